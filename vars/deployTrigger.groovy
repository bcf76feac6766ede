// deployTrigger: the Jenkins Pipeline step of deploy-broker (a shared-library
// global variable). It runs deploy-trigger on the agent, streams the job's
// output into the build log, and turns deploy-trigger's exit code into the
// build result. Full guide: docs/CI.md.
//
//   deployTrigger(env: 'staging', job: 'website', params: [version: '1.4.2'])
//
// Named arguments (only job is required):
//   job            catalogue job to run
//   params         Map of job parameters, e.g. [version: '1.4.2']
//   secretEnv      Map of secret job parameters to environment variable names, e.g.
//                  [token: 'DEPLOY_TOKEN'] inside withCredentials: passed as token@env=DEPLOY_TOKEN,
//                  so deploy-trigger reads the value from the environment and treats it as secret;
//                  the value is never in the step's script file nor in any process's argv
//   env            named environment from the environments file (--env)
//   environments   environments file (--environments); default .deploy-trigger.yaml in the workspace
//   topicArn       broker topic ARN, instead of env (--topic-arn)
//   region         AWS region for withAWS and the SDK (deploy-trigger itself uses the topic's region)
//   expectAccount  account id the run must land in (--expect-account)
//   startTimeout   e.g. '10m' (--start-timeout)
//   timeout        e.g. '45m' (--timeout)
//   roleArn        trigger role to assume first (--role-arn); externalId (--external-id)
//   credentialsId  Jenkins AWS credentials, used through withAWS (Pipeline: AWS Steps plugin)
//   extraArgs      List of further deploy-trigger arguments, e.g. ['--cancel-grace', '5m']
//   unstableOn     List of exit codes that mark the build UNSTABLE instead of failing it
//   propagate      false: never fail or mark the build, just return the result (default true)
//   trigger        the deploy-trigger executable (default: deploy-trigger on PATH). Agents get
//                  the release binary, checksum verified, baked into their image or through a
//                  tool installer: trigger: "${tool 'deploy-trigger'}/deploy-trigger"
//                  (docs/CI.md, "Getting deploy-trigger onto the agents"); never go build.
//
// Returns [exitCode: n, outcome: 'succeeded' | 'failed' | 'timeout' | …, message: '…',
//          runId: '01J…', taskArn: 'arn:aws:ecs:…', outputs: [name: 'value', …]]
//         (runId and taskArn when the run got that far; outputs: what the job
//         wrote to $DEPLOY_BROKER_OUTPUT, [:] when nothing).
//
// Safety: every argument becomes one single-quoted shell word; nothing from
// the arguments is interpolated into the shell script unquoted.
//
// Aborting the build cancels the run: the script execs deploy-trigger, so the
// SIGTERM Jenkins sends to the step's processes reaches deploy-trigger
// itself, which publishes a cancel request for the run.

import groovy.transform.Field

@Field static final List<String> KNOWN_ARGS = [
    'job', 'params', 'secretEnv', 'env', 'environments', 'topicArn', 'region', 'expectAccount', 'startTimeout', 'timeout',
    'roleArn', 'externalId', 'credentialsId', 'extraArgs', 'unstableOn', 'propagate', 'trigger',
]

def call(Map args = [:]) {
    List<String> words
    try {
        words = deployTriggerCommand(args)
    } catch (IllegalArgumentException e) {
        error(e.message)
    }
    // deploy-trigger writes its result (run id, task ARN…) to this file: the
    // step cannot read its output, because deploy-trigger must own the
    // process (exec) to receive Jenkins' SIGTERM and cancel the run.
    String resultFile = "${pwd(tmp: true)}/deploy-trigger-result-${UUID.randomUUID()}.json".toString()
    words.addAll(1, ['--result-file', resultFile])
    String script = 'exec ' + deployTriggerShellJoin(words)
    List<String> envVars = []
    if (args.region) {
        envVars << "AWS_REGION=${args.region}".toString()
        envVars << "AWS_DEFAULT_REGION=${args.region}".toString()
    }
    String label = "deploy-trigger ${args.job}".toString()
    int code
    withEnv(envVars) {
        if (args.credentialsId) {
            Map awsArgs = [credentials: args.credentialsId.toString()]
            if (args.region) {
                awsArgs.region = args.region.toString()
            }
            withAWS(awsArgs) {
                code = sh(script: script, returnStatus: true, label: label)
            }
        } else {
            code = sh(script: script, returnStatus: true, label: label)
        }
    }

    Map verdict = deployTriggerVerdict(code, args.job.toString(), (args.unstableOn ?: []) as List)
    Map run = fileExists(resultFile) ? deployTriggerParseResult(readFile(file: resultFile)) : [:]
    Map result = [exitCode: code, outcome: verdict.outcome, message: verdict.message, runId: run.run_id, taskArn: run.task_arn,
                  outputs: (run.outputs ?: [:]) as Map]
    if (args.propagate == false || verdict.result == 'SUCCESS') {
        if (verdict.result != 'SUCCESS') {
            echo "deployTrigger: ${verdict.message}"
        }
        return result
    }
    if (verdict.result == 'UNSTABLE') {
        unstable(verdict.message)
        return result
    }
    if (verdict.result == 'ABORTED') {
        currentBuild.result = 'ABORTED'
    }
    error(verdict.message)
}

// deployTriggerCommand checks the named arguments and builds deploy-trigger's
// argv, one element per word.
@NonCPS
List<String> deployTriggerCommand(Map args) {
    List<String> unknown = args.keySet().collect { it.toString() }.findAll { !KNOWN_ARGS.contains(it) }
    if (unknown) {
        throw new IllegalArgumentException("deployTrigger: unknown argument(s) ${unknown.join(', ')}; known: ${KNOWN_ARGS.join(', ')}")
    }
    String job = args.job?.toString()
    if (!job) {
        throw new IllegalArgumentException("deployTrigger: job is required, e.g. deployTrigger(env: 'staging', job: 'website', params: [version: '1.4.2'])")
    }
    if (args.params != null && !(args.params instanceof Map)) {
        throw new IllegalArgumentException("deployTrigger: params must be a Map, e.g. params: [version: '1.4.2']")
    }
    if (args.secretEnv != null && !(args.secretEnv instanceof Map)) {
        throw new IllegalArgumentException("deployTrigger: secretEnv must be a Map of parameter name to environment variable, e.g. secretEnv: [token: 'DEPLOY_TOKEN']")
    }
    if (args.extraArgs != null && !(args.extraArgs instanceof List)) {
        throw new IllegalArgumentException("deployTrigger: extraArgs must be a List of arguments, e.g. ['--cancel-grace', '5m']")
    }
    List<String> cmd = [(args.trigger ?: 'deploy-trigger').toString(), '--output', 'plain']
    Map flags = [
        env: '--env', environments: '--environments', topicArn: '--topic-arn', expectAccount: '--expect-account',
        startTimeout: '--start-timeout', timeout: '--timeout', roleArn: '--role-arn', externalId: '--external-id',
    ]
    flags.each { String key, String flag ->
        if (args[key] != null && args[key].toString() != '') {
            cmd << flag
            cmd << args[key].toString()
        }
    }
    (args.extraArgs ?: []).each { cmd << it.toString() }
    cmd << '--'
    cmd << job
    (args.params ?: [:]).each { k, v ->
        String name = k.toString()
        if (!(name ==~ /[a-z][a-z0-9_]*/)) {
            throw new IllegalArgumentException("deployTrigger: parameter name '${name}' is not valid: use lower-case letters, digits and '_', starting with a letter")
        }
        cmd << name + '=' + (v == null ? '' : v.toString())
    }
    // name@env=VAR: deploy-trigger reads the value from $VAR and treats it
    // as secret; only the variable's name is in the script and the argv.
    (args.secretEnv ?: [:]).each { k, v ->
        String name = k.toString()
        String var = v == null ? '' : v.toString()
        if (!(name ==~ /[a-z][a-z0-9_]*/)) {
            throw new IllegalArgumentException("deployTrigger: secretEnv parameter name '${name}' is not valid: use lower-case letters, digits and '_', starting with a letter")
        }
        if (!(var ==~ /[A-Za-z_][A-Za-z0-9_]*/)) {
            throw new IllegalArgumentException("deployTrigger: secretEnv variable '${var}' for '${name}' is not an environment variable name (letters, digits and '_'): name the variable withCredentials sets, not the secret")
        }
        if ((args.params ?: [:]).keySet().collect { it.toString() }.contains(name)) {
            throw new IllegalArgumentException("deployTrigger: parameter '${name}' is in both params and secretEnv")
        }
        cmd << name + '@env=' + var
    }
    return cmd
}

// deployTriggerParseResult reads deploy-trigger's --result-file.
@NonCPS
Map deployTriggerParseResult(String text) {
    try {
        return new groovy.json.JsonSlurperClassic().parseText(text) as Map
    } catch (Exception e) {
        return [:]
    }
}

// deployTriggerShellJoin quotes each word for a POSIX shell: inside single
// quotes nothing is special, and a single quote is written as '"'"'.
@NonCPS
String deployTriggerShellJoin(List<String> words) {
    return words.collect { String w -> "'" + w.replace("'", "'\"'\"'") + "'" }.join(' ')
}

// deployTriggerVerdict maps deploy-trigger's exit code (README, "Exit codes")
// to a build result and a one-line message.
@NonCPS
Map deployTriggerVerdict(int code, String job, List unstableOn) {
    String what = "deploy-trigger ${job}"
    Map v
    switch (code) {
        case 0:
            return [result: 'SUCCESS', outcome: 'succeeded', message: "${what}: the job succeeded".toString()]
        case 240:
            v = [outcome: 'usage', message: "${what}: usage error (exit 240): bad arguments, parameters, environment or missing topic; see the log above"]
            break
        case 241:
            v = [outcome: 'rejected', message: "${what}: the broker rejected the request (exit 241): unknown job, bad parameter, or expired/replayed request; see the reason above"]
            break
        case 248:
            v = [outcome: 'safety-stop', message: "${what}: safety stop (exit 248): confirmation declined or the run landed in an unexpected account"]
            break
        case 242:
            v = [outcome: 'start-failed', message: "${what}: broker trouble (exit 242): the task or the job's command could not start (image, capacity, network)"]
            break
        case 243:
            v = [outcome: 'lost-runner', message: "${what}: broker trouble (exit 243): the runner was lost (no heartbeat, or the task stopped without reporting); the job's outcome is unknown"]
            break
        case 246:
            v = [outcome: 'start-timeout', message: "${what}: broker trouble (exit 246): nothing arrived from the broker before the start timeout"]
            break
        case 247:
            v = [outcome: 'broker-error', message: "${what}: broker trouble (exit 247): AWS or broker error (publish failed, access denied, throttled)"]
            break
        case 244:
            v = [outcome: 'timeout', message: "${what}: timeout (exit 244): the job ran past its time limit and was stopped"]
            break
        case 245:
            v = [result: 'ABORTED', outcome: 'cancelled', message: "${what}: the run was cancelled (exit 245)"]
            break
        default:
            v = [outcome: 'failed', message: "${what}: the job failed with exit code ${code}"]
    }
    v.message = v.message.toString()
    if (!v.result) {
        v.result = 'FAILURE'
    }
    if (unstableOn.collect { it as int }.contains(code)) {
        v.result = 'UNSTABLE'
    }
    return v
}
