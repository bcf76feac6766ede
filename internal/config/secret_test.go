package config

import "testing"

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct {
		in       string
		kind     SecretKind
		resource string
		wantErr  bool
	}{
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf", SecretsManager, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf", false},
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf:password::", SecretsManager, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf", false},
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf:password:AWSCURRENT:", SecretsManager, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf", false},
		{"arn:aws:ssm:eu-west-1:123456789012:parameter/deploy/token", SSMParameter, "arn:aws:ssm:eu-west-1:123456789012:parameter/deploy/token", false},
		{"arn:aws:s3:::bucket/key", 0, "", true},
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:*", 0, "", true},
	} {
		s, err := ParseSecret(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseSecret(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if s.Kind != tc.kind || s.Resource != tc.resource {
			t.Errorf("ParseSecret(%q) = %+v, want kind %d resource %s", tc.in, s, tc.kind, tc.resource)
		}
	}
}

// A job's secret references are checked when the catalogue is read, with
// the same rules the stack's synthesis grants by.
func TestSecretReferencesAreCheckedWhenTheCatalogueIsRead(t *testing.T) {
	const cmd = `command: [/bin/deploy], `
	for arn, want := range map[string]string{
		"arn:aws:s3:::bucket/key":                                `secret DB_PASSWORD: "arn:aws:s3:::bucket/key" is neither a Secrets Manager secret ARN`,
		"arn:aws:secretsmanager:eu-west-1:123456789012:secret:*": `is neither a Secrets Manager secret ARN`,
		"prod/db": `is neither a Secrets Manager secret ARN`,
	} {
		wantConfigError(t, cmd+`secrets: {DB_PASSWORD: "`+arn+`"}`, want)
	}
	mustJob(t, cmd+`secrets: {DB_PASSWORD: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf:password::", TOKEN: "arn:aws:ssm:eu-west-1:123456789012:parameter/deploy/token"}`)
}
