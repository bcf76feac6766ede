package localbroker

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// What local mode writes for its user (the env files with the trusted CI
// principal's and the approver's credentials, the broker's log, each run's
// task log) is the user's alone: directories 0700, files 0600, created so
// (never opened wider and narrowed after), since jobs run under uids of
// their own when local mode is root and must read none of it. A job reads
// only the configuration's directory, its working directory.

// privateDir makes dir (and any missing parent) 0700. A directory of local
// mode's own that is already there and open to others (.local, made 0755
// by an earlier version) is closed too, unless jobs pass through it to
// their working directory jobDir (a -env-file in the configuration's
// directory, say). Any other directory a flag names keeps its mode: /tmp
// (shared, sticky) or someone's home is not local mode's to close, and
// the files it writes there are 0600 all the same. (Closing every
// directory named once made /tmp 0700 after -log /tmp/broker.log, and
// every other user of the machine lost it.)
func privateDir(dir, jobDir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil || within(jobDir, abs) || !localModesOwn(abs) {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != os.Geteuid() || fi.Mode()&fs.ModeSticky != 0 {
		return nil // another user's, or shared
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, fi.Mode().Perm()&0o700)
	}
	return nil
}

// localModesOwn reports whether the absolute path abs is in local mode's
// own directory, .local (its default place for the env file, the broker's
// log and the task logs).
func localModesOwn(abs string) bool {
	return slices.Contains(strings.Split(abs, string(filepath.Separator)), ".local")
}

// createPrivate creates path anew as a 0600 file for writing (missing
// directories 0700); a file already there (an earlier run's, perhaps
// 0644) is removed first, so the new one never takes its mode.
func createPrivate(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// writePrivate writes data to path as createPrivate makes it.
func writePrivate(path string, data []byte) error {
	f, err := createPrivate(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// within says whether path is dir or below it (both absolute and clean).
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// createTaskLog creates a run's task log, the user's alone (private.go).
func (a *agent) createTaskLog(runID string) (*os.File, error) {
	return createPrivate(filepath.Join(a.logDir, runID+".log"))
}
