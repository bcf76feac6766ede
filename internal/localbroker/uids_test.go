package localbroker

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/deploy-broker/deploy-broker/internal/runner"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: local mode gives jobs uids of their own only when run as root (as CI does)")
	}
}

// Security review, finding 3: every local broker started at uid 61000, so
// two brokers on one host (or one restarted) gave two runs the same uid.
// Two allocators sharing the host's lock directory (two brokers) never hold
// the same uid at once; a uid let go is handed out again.
func TestTwoBrokersNeverShareAJobUID(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "uids")
	open, err := os.MkdirTemp("", "open-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(open)
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	task := ecstypes.Task{TaskDefinitionArn: aws.String("arn:aws:ecs:us-east-1:123456789012:task-definition/b-deploy:3")}
	one, two := &agent{uidLocks: dir, dir: open}, &agent{uidLocks: dir, dir: open}
	held := map[int]*uidLease{}
	for i := 0; i < 8; i++ {
		for _, a := range []*agent{one, two} {
			env, l, err := a.isolation(task)
			if err != nil || l == nil || env[len(env)-1] != runner.EnvJobUID+"="+strconv.Itoa(l.uid) {
				t.Fatalf("%q %v %v", env, l, err)
			}
			if held[l.uid] != nil {
				t.Fatalf("uid %d handed out twice at once", l.uid)
			}
			held[l.uid] = l
		}
	}
	for uid, l := range held {
		if err := l.release(); err != nil {
			t.Fatal(err)
		}
		again, err := leaseUID(dir, uid-localJobUIDBase)
		if err != nil || again.uid != uid {
			t.Fatalf("uid %d let go, then: %v %v", uid, again, err)
		}
		_ = again.release()
		break
	}
}

// Security review, finding 3: a job's setsid child outlived its run and
// read a later run's credentials. When its run ends (release), no process
// of the uid remains; and a uid that has a process is not handed out.
func TestNoProcessOfAJobUIDOutlivesItsRun(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "uids")
	l, err := leaseUID(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	job := exec.Command("sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 < /dev/null &")
	job.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: uint32(l.uid), Gid: uint32(l.uid)}}
	if out, err := job.CombinedOutput(); err != nil {
		t.Fatalf("the job: %v %s", err, out)
	}
	pids, err := uidProcesses(l.uid)
	if err != nil || len(pids) == 0 {
		t.Fatalf("the job left nothing behind (%v): the test proves nothing", err)
	}
	t.Cleanup(func() { _ = killUID(l.uid) })
	// Not handed out while its process lives (another broker's lock gone).
	if err := l.lock.Close(); err != nil {
		t.Fatal(err)
	}
	if other, err := leaseUID(dir, l.uid-localJobUIDBase); err != nil || other.uid == l.uid {
		t.Fatalf("a uid with a live process handed out: %v %v", other, err)
	} else {
		_ = other.release()
	}
	if l, err = leaseUIDExactly(dir, l.uid); err != nil {
		t.Fatal(err)
	}
	if err := l.release(); err != nil {
		t.Fatal(err)
	}
	if pids, err := uidProcesses(l.uid); err != nil || len(pids) > 0 {
		t.Fatalf("after the run, processes %v of uid %d remain (%v)", pids, l.uid, err)
	}
}

// leaseUIDExactly locks uid's file as leaseUID does, whatever runs under it.
func leaseUIDExactly(dir string, uid int) (*uidLease, error) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(uid)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return &uidLease{uid: uid, lock: f}, nil
}
