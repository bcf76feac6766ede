package broker

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// The jsii runtime (a node process) starts once per test binary, and each
// fixture is synthesized once and shared by every test that asserts on it.
//
// jsii.Close is not called: in jsii-runtime-go v1.139.0 it calls Wait on the
// node process's exec.Cmd while the runtime's own goroutine is in Wait on the
// same Cmd, a data race that fails the package under -race. The node process
// exits when this process does (its stdin closes); the runtime's temporary
// directory, which Close would remove, is made under a TMPDIR of our own that
// is removed here.
func TestMain(m *testing.M) {
	os.Setenv("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
	tmp, err := os.MkdirTemp("", "deploy-broker-infra-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("TMPDIR", tmp)
	code := m.Run()
	for _, dir := range outdirs {
		os.RemoveAll(dir)
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

var outdirs []string

// fixture is one synthesized broker app.
type fixture struct {
	app      *App
	template assertions.Template
	json     map[string]interface{}
	outdir   string
	err      error
}

// resources is the template's Resources section.
func (f *fixture) resources() map[string]interface{} {
	return f.json["Resources"].(map[string]interface{})
}

var (
	mainOnce, otherOnce   sync.Once
	mainFixture, otherFix *fixture
)

// repoRoot is the module root, two levels above infra/internal/broker.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// mainStack is testdata/broker.yaml (new VPC, new OIDC provider, two jobs
// with secrets, environment and a managed policy), with the dispatcher built
// for real by `go build`.
func mainStack(t *testing.T) *fixture {
	t.Helper()
	mainOnce.Do(func() { mainFixture = synth(repoRoot(t), "testdata/broker.yaml", nil) })
	if mainFixture.err != nil {
		t.Fatalf("synthesizing testdata/broker.yaml: %v", mainFixture.err)
	}
	return mainFixture
}

// otherStack is testdata/existing-network.yaml (existing subnets and OIDC
// provider, one job from a public image), with a placeholder dispatcher.
func otherStack(t *testing.T) *fixture {
	t.Helper()
	otherOnce.Do(func() { otherFix = synth(repoRoot(t), "", placeholderBuild) })
	if otherFix.err != nil {
		t.Fatalf("synthesizing testdata/existing-network.yaml: %v", otherFix.err)
	}
	return otherFix
}

var (
	warmOnce    sync.Once
	warmFixture *fixture
)

// warmStack is testdata/warm.yaml (a job with warm runners and one
// without), with a placeholder dispatcher.
func warmStack(t *testing.T) *fixture {
	t.Helper()
	warmOnce.Do(func() { warmFixture = synth(repoRoot(t), "testdata/warm.yaml", placeholderBuild) })
	if warmFixture.err != nil {
		t.Fatalf("synthesizing testdata/warm.yaml: %v", warmFixture.err)
	}
	return warmFixture
}

// placeholderBuild stands in for `go build` where the binary does not matter.
func placeholderBuild(_, outDir string) error {
	return os.WriteFile(filepath.Join(outDir, "bootstrap"), []byte("#!/bin/sh\n"), 0o755)
}

func synth(root, config string, build BuildFunc) (f *fixture) {
	f = &fixture{}
	defer func() {
		if r := recover(); r != nil {
			f.err = fmt.Errorf("panic: %v", r)
		}
	}()
	dir, err := os.MkdirTemp("", "deploy-broker-cdk-")
	if err != nil {
		f.err = err
		return f
	}
	outdirs = append(outdirs, dir)
	f.outdir = dir
	props := &awscdk.AppProps{Outdir: jsii.String(dir)}
	if config == "" {
		// Read the file the way `cdk synth -c config=...` names it.
		props.Context = &map[string]interface{}{ConfigContextKey: "testdata/existing-network.yaml"}
	}
	f.app, f.err = NewApp(Options{ConfigPath: config, RepoRoot: root, Build: build, AppProps: props})
	if f.err != nil {
		return f
	}
	f.template = assertions.Template_FromStack(f.app.Stack.Stack, nil)
	f.json = *f.template.ToJSON()
	return f
}

// has asserts with a CDK matcher, reporting a mismatch as a test failure
// instead of the panic jsii turns it into.
func has(t *testing.T, tpl assertions.Template, resourceType string, props interface{}) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("no %s matches:\n%v", resourceType, r)
		}
	}()
	tpl.HasResourceProperties(jsii.String(resourceType), props)
}

// count asserts how many resources of a type the template has.
func count(t *testing.T, tpl assertions.Template, resourceType string, n int) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%v", r)
		}
	}()
	tpl.ResourceCountIs(jsii.String(resourceType), jsii.Number(float64(n)))
}

// Shorthands for matchers.
type obj = map[string]interface{}
type arr = []interface{}

func like(m obj) assertions.Matcher                 { return assertions.Match_ObjectLike(&m) }
func arrayWith(a ...interface{}) assertions.Matcher { return assertions.Match_ArrayWith(&a) }
