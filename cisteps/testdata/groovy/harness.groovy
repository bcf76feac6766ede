// Test harness for vars/deployTrigger.groovy, run by cisteps with
// the Debian groovy package:
//
//   groovy -cp testdata/groovy testdata/groovy/harness.groovy CASES.json FILE...
//
// It parses every FILE (the step and the example Jenkinsfile), then runs the
// step's call() once per case with stubs for the Pipeline steps it uses (sh,
// withEnv, withAWS, error, unstable, echo, currentBuild, pwd, fileExists,
// readFile) and prints one JSON
// line, "HARNESS-RESULT [...]", with what each case did. A case's sh either
// returns its "status", or, with "exec": true, really runs the script as
// Jenkins does (sh -xe FILE) and returns its exit status.
import groovy.json.JsonOutput
import groovy.json.JsonSlurper

class StepError extends RuntimeException {
    StepError(String msg) { super(msg) }
}

List<String> argv = args as List
File casesFile = new File(argv[0])
List<File> files = argv.drop(1).collect { new File(it) }

GroovyShell shell = new GroovyShell(this.class.classLoader)
files.each { f ->
    shell.parse(f)
    System.err.println("parsed ${f}")
}
File step = files.find { it.name == 'deployTrigger.groovy' }

Map runCase(GroovyShell shell, File step, Map c) {
    Map rec = [sh: [], echo: [], unstable: [], withAWS: [], currentBuild: [result: null]]
    List<List> envStack = []
    Binding b = new Binding()
    b.setVariable('currentBuild', rec.currentBuild)
    b.setVariable('echo', { String s -> rec.echo << s.toString() })
    b.setVariable('unstable', { String s -> rec.unstable << s.toString() })
    b.setVariable('pwd', { Map m -> System.getProperty('java.io.tmpdir') })
    b.setVariable('fileExists', { String p -> new File(p).exists() })
    b.setVariable('readFile', { Map m -> new File(m.file.toString()).text })
    b.setVariable('error', { String s -> throw new StepError(s.toString()) })
    b.setVariable('withEnv', { List l, Closure body ->
        envStack.push(l.collect { it.toString() })
        try { return body() } finally { envStack.pop() }
    })
    b.setVariable('withAWS', { Map m, Closure body ->
        rec.withAWS << m.collectEntries { k, v -> [(k.toString()): v.toString()] }
        return body()
    })
    b.setVariable('sh', { Map m ->
        Map call = [script: m.script.toString(), label: m.label?.toString(), returnStatus: m.returnStatus,
                    env: envStack.flatten().collect { it.toString() }, inAWS: rec.withAWS.size()]
        rec.sh << call
        if (!c.exec) {
            return c.status as int
        }
        File f = File.createTempFile('deploy-trigger-step', '.sh')
        try {
            f.text = call.script
            ProcessBuilder pb = new ProcessBuilder(['sh', '-xe', f.path])
            call.env.each { String kv ->
                int i = kv.indexOf('=')
                pb.environment().put(kv.substring(0, i), kv.substring(i + 1))
            }
            pb.redirectErrorStream(true)
            Process p = pb.start()
            call.output = p.inputStream.getText('UTF-8')
            return p.waitFor()
        } finally {
            f.delete()
        }
    })
    Script script = shell.parse(step)
    script.binding = b
    try {
        rec.returned = script.invokeMethod('call', [c.args] as Object[])
    } catch (StepError e) {
        rec.error = e.message
    } catch (Throwable e) {
        rec.exception = e.toString()
    }
    rec.result = rec.currentBuild.result
    rec.remove('currentBuild')
    return rec
}

List cases = new JsonSlurper().parse(casesFile) as List
List results = cases.collect { Map c -> runCase(shell, step, c) }
println('HARNESS-RESULT ' + JsonOutput.toJson(results))
