package trigger

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

type staticProvider struct{ calls int }

func (p *staticProvider) Retrieve(context.Context) (aws.Credentials, error) {
	p.calls++
	return aws.Credentials{AccessKeyID: "AKIAFRESH", SecretAccessKey: "s", SessionToken: "t", CanExpire: true, Expires: time.Now().Add(time.Hour)}, nil
}

// Review finding 7: the MFA session cache is used only from a directory
// and a file of ours that nobody else can read or replace; otherwise it is
// ignored with a warning (and a laxer directory of ours is tightened).
func TestMFACacheRefusesWhatIsNotOurs(t *testing.T) {
	planted := `{"access_key_id":"AKIAPLANTED","secret_access_key":"x","session_token":"y","expires":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, dir, file string)
		warn  string // "" when the cache is used
	}{
		{"ours", func(t *testing.T, dir, file string) {}, ""},
		{"file mode 0644", func(t *testing.T, dir, file string) { os.Chmod(file, 0o644) }, "not 0600"},
		{"lax directory of ours is tightened", func(t *testing.T, dir, file string) { os.Chmod(dir, 0o755) }, ""},
		{"file is a symlink", func(t *testing.T, dir, file string) {
			other := filepath.Join(t.TempDir(), "other.json")
			os.WriteFile(other, []byte(planted), 0o600)
			os.Remove(file)
			os.Symlink(other, file)
		}, "not a regular file"},
		{"directory is a symlink", func(t *testing.T, dir, file string) {
			other := t.TempDir()
			os.Chmod(other, 0o700)
			os.WriteFile(filepath.Join(other, filepath.Base(file)), []byte(planted), 0o600)
			os.RemoveAll(dir)
			os.Symlink(other, dir)
		}, "not a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "mfa")
			os.Mkdir(dir, 0o700)
			file := filepath.Join(dir, "s.json")
			os.WriteFile(file, []byte(planted), 0o600)
			c.setup(t, dir, file)
			var warned []string
			inner := &staticProvider{}
			f := &fileCachedCredentials{inner: inner, path: file, warn: func(s string) { warned = append(warned, s) }}
			creds, err := f.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if c.warn == "" {
				if creds.AccessKeyID != "AKIAPLANTED" || len(warned) > 0 {
					t.Errorf("cache not used: %s, warnings %q", creds.AccessKeyID, warned)
				}
				if fi, _ := os.Lstat(dir); fi.Mode().Perm() != 0o700 {
					t.Errorf("directory mode %#o, want 0700", fi.Mode().Perm())
				}
				return
			}
			if creds.AccessKeyID != "AKIAFRESH" || inner.calls != 1 {
				t.Errorf("cache used: %s", creds.AccessKeyID)
			}
			if len(warned) != 1 || !strings.Contains(warned[0], c.warn) {
				t.Errorf("warnings %q, want one saying %q", warned, c.warn)
			}
		})
	}
	// Another user's file or directory: tests do not run as two users, so
	// the owner check sees a stat that says so.
	fi, err := os.Lstat(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := *fi.Sys().(*syscall.Stat_t)
	st.Uid = uint32(os.Geteuid() + 1)
	if err := ownedByUs("/x", otherOwner{fi, &st}); err == nil || !strings.Contains(err.Error(), "belongs to uid") {
		t.Errorf("ownedByUs(another user's) = %v", err)
	}
	if err := ownedByUs("/x", fi); err != nil {
		t.Errorf("ownedByUs(ours) = %v", err)
	}
}

type otherOwner struct {
	os.FileInfo
	st *syscall.Stat_t
}

func (o otherOwner) Sys() any { return o.st }
