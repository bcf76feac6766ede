package trigger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
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
}

type cachedSession struct {
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token"`
	Expires         time.Time `json:"expires"`
}

func (f *fileCachedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
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
