package trigger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// mfaCacheMargin: a cached session this close to expiring is not used.
const mfaCacheMargin = 5 * time.Minute

// mfaCachePath is the file that caches the session of profile when the
// profile assumes a role with an MFA device (role_arn and mfa_serial), or ""
// otherwise. The name is a digest of what the session depends on: profile,
// role, MFA device, external id and endpoint. It lives in
// $XDG_CACHE_HOME/deploy-trigger/mfa (default ~/.cache/deploy-trigger/mfa);
// DEPLOY_TRIGGER_MFA_CACHE=off disables it.
func mfaCachePath(ctx context.Context, profile string, getenv func(string) string, endpoint string) string {
	if profile == "" || getenv("DEPLOY_TRIGGER_MFA_CACHE") == "off" {
		return ""
	}
	sc, err := config.LoadSharedConfigProfile(ctx, profile, func(o *config.LoadSharedConfigOptions) {
		if f := getenv("AWS_CONFIG_FILE"); f != "" {
			o.ConfigFiles = []string{f}
		}
		if f := getenv("AWS_SHARED_CREDENTIALS_FILE"); f != "" {
			o.CredentialsFiles = []string{f}
		}
	})
	if err != nil || sc.RoleARN == "" || sc.MFASerial == "" {
		return ""
	}
	dir := getenv("XDG_CACHE_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".cache")
	}
	sum := sha256.Sum256([]byte(profile + "\x00" + sc.RoleARN + "\x00" + sc.MFASerial + "\x00" + sc.ExternalID + "\x00" + endpoint))
	return filepath.Join(dir, "deploy-trigger", "mfa", hex.EncodeToString(sum[:16])+".json")
}

// fileCachedCredentials serves credentials from a 0600 file while they are
// valid, and otherwise from inner (which asks for the MFA code), saving
// what inner returns.
type fileCachedCredentials struct {
	inner aws.CredentialsProvider
	path  string
	warn  func(string) // says why the cache is not used
}

type cachedSession struct {
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token"`
	Expires         time.Time `json:"expires"`
}

func (f *fileCachedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	if err := checkCache(f.path); err != nil {
		if f.warn != nil {
			f.warn("not using the MFA session cache: " + err.Error())
		}
		return f.inner.Retrieve(ctx)
	}
	if b, err := os.ReadFile(f.path); err == nil {
		var s cachedSession
		if json.Unmarshal(b, &s) == nil && s.AccessKeyID != "" && time.Until(s.Expires) > mfaCacheMargin {
			return aws.Credentials{AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey, SessionToken: s.SessionToken,
				Source: "deploy-trigger MFA session cache", CanExpire: true, Expires: s.Expires}, nil
		}
	}
	creds, err := f.inner.Retrieve(ctx)
	if err != nil {
		return creds, err
	}
	if creds.CanExpire && !creds.Expires.IsZero() {
		_ = f.save(cachedSession{creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken, creds.Expires})
	}
	return creds, nil
}

// save writes the session with 0600 permissions, in a 0700 directory,
// through a temporary file so that a reader never sees half of it.
func (f *fileCachedCredentials) save(s cachedSession) error {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".session-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.path)
}

// checkCache says why the cache at path may not be trusted, or nil. With a
// shared (or planted) cache directory another user could serve their own
// credentials or read ours: the directory must be ours, not a symbolic
// link, and mode 0700 (a laxer one of ours is tightened); the file, if there
// is one, ours, a regular file (not a symbolic link) and mode 0600. A
// missing directory or file is fine: save creates them.
func checkCache(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (a symbolic link?)", dir)
	}
	if err := ownedByUs(dir, fi); err != nil {
		return err
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("%s has mode %#o, and making it 0700 failed: %w", dir, fi.Mode().Perm(), err)
		}
	}
	fi, err = os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (a symbolic link?)", path)
	}
	if err := ownedByUs(path, fi); err != nil {
		return err
	}
	if fi.Mode().Perm() != 0o600 {
		return fmt.Errorf("%s has mode %#o, not 0600", path, fi.Mode().Perm())
	}
	return nil
}

func ownedByUs(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("cannot tell who owns %s", path)
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to us (uid %d)", path, st.Uid, os.Geteuid())
	}
	return nil
}
