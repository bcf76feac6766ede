package localbroker

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/moto"
)

// asJob runs argv as a job of local mode run as root does: under a uid of
// its own, in the configuration's directory.
func asJob(dir string, uid uint32, argv ...string) ([]byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	return cmd.CombinedOutput()
}

// Security review, finding 1 (high) and 2: a job under its own uid read
// .local/broker.env (the trusted CI principal's credentials, 0644 in a 0755
// directory), sourced it and cancelled a sibling run; and read every run's
// task log and the broker's log. Now what local mode writes there is 0600 in
// 0700 directories, also where an earlier version left .local 0755 with a
// 0644 env file; the job still reads its configuration's directory.
func TestAJobReadsNoneOfLocalModesFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: local mode gives jobs uids of their own only when run as root (as CI does)")
	}
	base, err := os.MkdirTemp("", "local-files-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	cfgDir, local := filepath.Join(base, "cfg"), filepath.Join(base, ".local")
	for _, d := range []string{base, cfgDir, local} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(cfgDir, "broker.yaml")
	envFile := filepath.Join(local, "broker.env")
	for _, f := range []string{cfgPath, envFile} { // an earlier version's env file
		if err := os.WriteFile(f, []byte("# x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logw, err := prepareFiles(cfgPath, envFile, filepath.Join(local, "broker.log"), filepath.Join(local, "tasks"))
	if err != nil {
		t.Fatal(err)
	}
	logw.Close()
	b := &Broker{Server: &moto.Server{URL: "http://127.0.0.1:4566"}, Resources: &Resources{Region: "us-east-1", TopicARN: "arn:aws:sns:us-east-1:123456789012:b"}}
	if err := b.WriteEnvFile(envFile); err != nil {
		t.Fatal(err)
	}
	if _, err := writeApproverFile(envFile, "arn:aws:sts::1:assumed-role/approver/x", []string{"AWS_ACCESS_KEY_ID=AKIA"}); err != nil {
		t.Fatal(err)
	}
	a := &agent{logDir: filepath.Join(local, "tasks")}
	f, err := a.createTaskLog("01JDRUN")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	const uid = 61999
	if out, err := asJob(cfgDir, uid, "cat", "broker.yaml"); err != nil {
		t.Fatalf("the job cannot read its configuration's directory: %v %s", err, out)
	}
	for _, p := range []string{envFile, filepath.Join(local, "approver.env"), filepath.Join(local, "environments.yaml"), filepath.Join(local, "broker.log"), filepath.Join(local, "tasks", "01JDRUN.log")} {
		if out, err := asJob(cfgDir, uid, "cat", p); err == nil {
			t.Errorf("a job under uid %d read %s", uid, p)
		} else if fi, _ := os.Stat(p); fi == nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%s)", p, fi, out)
		}
	}
	if out, err := asJob(cfgDir, uid, "ls", filepath.Join(local, "tasks")); err == nil {
		t.Errorf("a job lists the task logs (run ids): %s", out)
	}
}

// A directory a flag names that is not local mode's own keeps its mode:
// -log /tmp/broker.log once made /tmp 0700 (every other user of the
// machine, and every job under its own uid, lost /tmp), and -env-file
// $HOME/broker.env would have closed the home directory. The files are
// 0600 wherever they are. Only .local, local mode's own, is closed.
func TestPrepareFilesLeavesOtherDirectoriesAsTheyAre(t *testing.T) {
	base := t.TempDir()
	shared, home, local := filepath.Join(base, "tmp"), filepath.Join(base, "home"), filepath.Join(base, "home", ".local")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{shared, 0o777 | os.ModeSticky}, {home, 0o755}, {local, 0o755}} {
		if err := os.Mkdir(d.path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	cfgDir := filepath.Join(base, "cfg")
	if err := os.Mkdir(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	logw, err := prepareFiles(filepath.Join(cfgDir, "broker.yaml"), filepath.Join(local, "broker.env"), filepath.Join(shared, "broker.log"), filepath.Join(home, "tasks"))
	if err != nil {
		t.Fatal(err)
	}
	logw.Close()
	for _, c := range []struct {
		path string
		want os.FileMode
	}{
		{shared, 0o777 | os.ModeSticky},
		{home, 0o755},
		{local, 0o700},                        // local mode's own: closed
		{filepath.Join(home, "tasks"), 0o700}, // made by it
		{filepath.Join(shared, "broker.log"), 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeSticky); got != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, got, c.want)
		}
	}
}
