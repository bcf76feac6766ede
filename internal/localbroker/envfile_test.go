package localbroker

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/moto"
)

// Issue 14.12: the env file sets no empty variable (an empty AWS_PROFILE
// breaks the AWS CLI for whoever sources it) and still holds what
// deploy-trigger needs.
func TestEnvFileHasNoEmptyValues(t *testing.T) {
	b := &Broker{Server: &moto.Server{URL: "http://127.0.0.1:4566"}, Resources: &Resources{Region: "us-east-1", TopicARN: "arn:aws:sns:us-east-1:123456789012:deploy-broker"}}
	path := filepath.Join(t.TempDir(), "broker.env")
	if err := b.WriteEnvFile(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if k, v, _ := strings.Cut(line, "="); v == "" {
			t.Errorf("%s is set to an empty value", k)
		}
	}
	for _, want := range []string{"AWS_ENDPOINT_URL=http://127.0.0.1:4566\n", "AWS_ACCESS_KEY_ID=" + moto.AccessKeyID + "\n", "DEPLOY_TRIGGER_TOPIC_ARN=arn:aws:sns:us-east-1:123456789012:deploy-broker\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("env file lacks %q:\n%s", want, s)
		}
	}
}

// Issue 25: the env file names an environments file whose environment
// "local" is the broker's topic, so that `deploy-trigger runs --env local`
// works in local mode as `--env production` does against a stack.
func TestEnvFileNamesTheLocalEnvironment(t *testing.T) {
	b := &Broker{Server: &moto.Server{URL: "http://127.0.0.1:4566"}, Resources: &Resources{Region: "us-east-1", TopicARN: "arn:aws:sns:us-east-1:123456789012:deploy-broker"}}
	dir := t.TempDir()
	if err := b.WriteEnvFile(filepath.Join(dir, "broker.env")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "broker.env"))
	if err != nil {
		t.Fatal(err)
	}
	envs := filepath.Join(dir, "environments.yaml")
	if !strings.Contains(string(data), "\nDEPLOY_TRIGGER_ENVIRONMENTS="+envs+"\n") {
		t.Errorf("env file does not name %s:\n%s", envs, data)
	}
	yml, err := os.ReadFile(envs)
	if err != nil || !strings.Contains(string(yml), "\n  local:\n    topic_arn: arn:aws:sns:us-east-1:123456789012:deploy-broker\n") {
		t.Errorf("environments file (%v):\n%s", err, yml)
	}
}

// Issue 14.12: make demo checks its tools before it builds anything.
func TestMakeDemoChecksToolsFirst(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	out, err := exec.Command("make", "-n", "-C", "../..", "demo").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n demo: %v\n%s", err, out)
	}
	var cmds []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, "make") {
			cmds = append(cmds, l)
		}
	}
	if len(cmds) == 0 || !strings.Contains(cmds[0], "check-deps.sh demo") {
		t.Errorf("make demo does not check its tools first:\n%s", out)
	}
}

// Issue 25: deploy-trigger's link flags do not depend on the time of the
// build (they held `date`, so every make build relinked it): with a `date`
// that answers differently each time, two `make -n build` agree.
func TestMakeBuildFlagsAreTheCommits(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "date"), []byte("#!/bin/sh\necho \"$$\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := func() string {
		cmd := exec.Command("make", "-n", "-C", "../..", "build")
		cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n build: %v\n%s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "-o bin/deploy-trigger") {
				return l
			}
		}
		t.Fatalf("make -n build does not build deploy-trigger:\n%s", out)
		return ""
	}
	if a, b := link(), link(); a != b {
		t.Errorf("two builds of one commit link deploy-trigger differently:\n%s\n%s", a, b)
	}
}

// Issue 25: check-deps.sh checks Node's version against the jsii runtime's
// floor: 18 is refused, 20 works with a note, 22 passes in silence.
func TestCheckDepsChecksNodesVersion(t *testing.T) {
	dir := t.TempDir()
	for _, tool := range []string{"moto_server", "cfn-lint"} {
		if err := os.WriteFile(filepath.Join(dir, tool), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		version string
		fails   bool
		want    string // in the output; "" for no word of Node
	}{
		{"v18.19.0", true, "missing: Node.js 22+ (found v18.19.0"},
		{"v20.20.2", false, "note: Node v20.20.2 works for CDK synthesis but is past the jsii runtime's support"},
		{"v22.3.0", false, ""},
		{"v24.0.1", false, ""},
	} {
		if err := os.WriteFile(filepath.Join(dir, "node"), []byte("#!/bin/sh\necho "+c.version+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("../../scripts/check-deps.sh", "test")
		cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		switch {
		case c.fails && err == nil:
			t.Errorf("node %s: check-deps.sh passed:\n%s", c.version, out)
		case c.want == "" && strings.Contains(string(out), "Node"):
			t.Errorf("node %s: check-deps.sh says:\n%s", c.version, out)
		case c.want != "" && !strings.Contains(string(out), c.want):
			t.Errorf("node %s: check-deps.sh says\n%s\nwant %q", c.version, out, c.want)
		}
	}
}
