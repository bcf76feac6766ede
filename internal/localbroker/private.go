package localbroker

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// What local mode writes for its user (the env files with the trusted CI
// principal's and the approver's credentials, the broker's log, each run's
// task log) is the user's alone: directories 0700, files 0600, created so
// (never opened wider and narrowed after), since jobs run under uids of
// their own when local mode is root and must read none of it. A job reads
// only the configuration's directory, its working directory.

// privateDir makes dir (and any missing parent) 0700. A directory that is
// already there and open to others (made by an earlier version, 0755) is
// closed too, unless jobs pass through it to their working directory
// jobDir (a -env-file in the configuration's directory, say): the files in
// it are private all the same.
func privateDir(dir, jobDir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if abs, err := filepath.Abs(dir); err != nil || within(jobDir, abs) {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, fi.Mode().Perm()&0o700)
	}
	return nil
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
