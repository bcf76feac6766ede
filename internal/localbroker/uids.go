package localbroker

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Job uids across local brokers (security review, finding 3): a uid is a
// run's alone from the runner's start until every process of the uid is
// gone. Each uid in use holds an exclusive lock on a file of a root-only
// directory, so that two local brokers on one host (or one restarted) never
// hand out the same uid at once; a uid that still has processes (a job's
// left-behind child from before) is not handed out; and when a run ends,
// every process of its uid is killed before its lock is let go: a job's
// setsid child no longer outlives its run to read a later run's
// credentials.

// uidLockDir is where the uid locks are: root's, 0700; one place for the
// host, whatever TMPDIR each broker has (/run, else the temporary
// directory).
func uidLockDir() string {
	if fi, err := os.Stat("/run"); err == nil && fi.IsDir() {
		return "/run/deploy-broker-local-uids"
	}
	return filepath.Join(os.TempDir(), "deploy-broker-local-uids")
}

// uidLease is a job uid held by a run.
type uidLease struct {
	uid  int
	lock *os.File
}

// leaseUID takes the first uid, from localJobUIDBase+start on in turn, that
// no other run holds and no process runs under.
func leaseUID(dir string, start int) (*uidLease, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("the job uid locks: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || fi.Mode().Perm() != 0o700 || !ok || int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%s is not a directory of this user's alone (0700): remove it and start again", dir)
	}
	for i := 0; i < localJobUIDs; i++ {
		uid := localJobUIDBase + (start+i)%localJobUIDs
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(uid)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue // another run's, here or in another local broker
			}
			return nil, fmt.Errorf("locking job uid %d: %w", uid, err)
		}
		if pids, err := uidProcesses(uid); err != nil || len(pids) > 0 {
			f.Close() // still in use by something else: not this one
			if err != nil {
				return nil, err
			}
			continue
		}
		return &uidLease{uid: uid, lock: f}, nil
	}
	return nil, fmt.Errorf("all %d job uids from %d are in use", localJobUIDs, localJobUIDBase)
}

// release kills every process of the uid, then lets the uid go. A uid
// whose processes do not all die stays locked (until this broker exits),
// and the error says so.
func (l *uidLease) release() error {
	if l == nil {
		return nil
	}
	if err := killUID(l.uid); err != nil {
		return err
	}
	return l.lock.Close()
}

// killUID sends SIGKILL to every process of uid until none is left (a
// process forking meanwhile is caught by the next pass).
func killUID(uid int) error {
	for pass := 0; pass < 100; pass++ {
		pids, err := uidProcesses(uid)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond) // the kernel takes them down
	}
	return fmt.Errorf("processes of job uid %d survive SIGKILL", uid)
}

// uidProcesses lists the live processes any of whose uids (real,
// effective, saved, filesystem) is uid, from /proc/*/status. Zombies hold
// nothing (no memory, no environment) and are left to their parent.
func uidProcesses(uid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	want := strconv.Itoa(uid)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue // gone meanwhile
		}
		var zombie, match bool
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "State:"); ok {
				s := strings.TrimSpace(v)
				zombie = strings.HasPrefix(s, "Z") || strings.HasPrefix(s, "X")
			}
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				for _, u := range strings.Fields(v) {
					match = match || u == want
				}
				break // State comes before Uid
			}
		}
		f.Close()
		if match && !zombie {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
