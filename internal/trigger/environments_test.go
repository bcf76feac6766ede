package trigger

import (
	"strings"
	"testing"
)

func TestDecodeEnvironments(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"ok", "environments:\n  dev:\n    topic_arn: arn:aws:sns:us-east-1:123456789012:b\n    account_id: \"123456789012\"\n", ""},
		{"unquoted account id", "environments:\n  dev:\n    topic_arn: arn:aws:sns:us-east-1:123456789012:b\n    account_id: 123456789012\n", ""},
		{"unknown field", "environments:\n  dev:\n    topic: arn:aws:sns:us-east-1:123456789012:b\n", `envs.yaml:3: unknown key "topic" in environments.dev; valid keys: account_alias, account_id, confirm, external_id, profile, region, role_arn, topic_arn; did you mean "topic_arn"?`},
		{"typo", "environments:\n  dev:\n    topic_arn: arn:aws:sns:us-east-1:123456789012:b\n    acount_id: \"123456789012\"\n", `envs.yaml:4: unknown key "acount_id" in environments.dev; valid keys: account_alias, account_id, confirm, external_id, profile, region, role_arn, topic_arn; did you mean "account_id"?`},
		{"unknown top-level", "envs: {}\n", `envs.yaml:1: unknown key "envs" in the top level; valid keys: environments`},
		{"empty", "", "is empty"},
		{"no environments", "environments: {}\n", "defines no environments"},
		{"missing topic", "environments:\n  dev:\n    region: us-east-1\n", `environment "dev": topic_arn is missing`},
		{"region mismatch", "environments:\n  dev:\n    topic_arn: arn:aws:sns:us-east-1:123456789012:b\n    region: eu-west-1\n", "does not match the topic ARN's region"},
		{"account mismatch", "environments:\n  dev:\n    topic_arn: arn:aws:sns:us-east-1:123456789012:b\n    account_id: \"111122223333\"\n", "does not match the topic ARN's account"},
		{"wrong type", "environments:\n  dev:\n    topic_arn: arn:aws:sns:us-east-1:123456789012:b\n    confirm: maybe\n", "cannot unmarshal"},
		{"two documents", "environments:\n  dev:\n    topic_arn: arn:aws:sns:us-east-1:123456789012:b\n---\nx: 1\n", "more than one YAML document"},
		{"too large", strings.Repeat("#", MaxEnvironmentsBytes+1), "over the"},
		{"external id without role", "environments:\n  dev:\n    topic_arn: arn:aws:sns:us-east-1:123456789012:b\n    external_id: x\n", "external_id needs role_arn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeEnvironments([]byte(tt.in), "envs.yaml")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func FuzzDecodeEnvironments(f *testing.F) {
	f.Add([]byte("environments:\n  dev:\n    topic_arn: arn:aws:sns:us-east-1:123456789012:b\n    confirm: true\n"))
	f.Add([]byte("environments: {a: {topic_arn: x}}"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("environments:\n  a: &x\n    topic_arn: arn:aws:sns:us-east-1:123456789012:b\n  b: *x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeEnvironments(b, "fuzz.yaml")
		if err != nil {
			if got != nil {
				t.Fatal("result with an error")
			}
			// One line per problem (internal/yamlerr lists every unknown
			// key), each naming the file and line it is about.
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.Contains(line, "fuzz.yaml") {
					t.Fatalf("error line %q does not name the file (whole error %q)", line, err)
				}
			}
			return
		}
		if len(got.Environments) == 0 {
			t.Fatal("accepted a file with no environments")
		}
		for name, e := range got.Environments {
			if _, err := parseTopicARN(e.TopicARN); err != nil {
				t.Fatalf("environment %q accepted with bad topic: %v", name, err)
			}
		}
	})
}
