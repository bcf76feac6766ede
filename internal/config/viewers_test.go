package config

import (
	"slices"
	"strings"
	"testing"
)

func TestViewers(t *testing.T) {
	parse := func(extra string) (*Config, error) {
		return Parse([]byte("broker: {name: b}\ntrusted_principals: [\"123456789012\"]\n" + extra + "runner: {image: i}\njobs:\n  j: {command: [/bin/true]}\n"))
	}
	// Issue 22: no default. With the trusted principals as viewers, every
	// CI principal could read every other's runs in the run log.
	c, err := parse("")
	if err != nil || len(c.ViewerPrincipals()) != 0 {
		t.Errorf("default viewers %v (%v), want none (not the trusted principals)", c.ViewerPrincipals(), err)
	}
	c, err = parse("viewers: [\"arn:aws:iam::333333333333:role/auditor\"]\n")
	if err != nil || !slices.Equal(c.ViewerPrincipals(), []string{"arn:aws:iam::333333333333:role/auditor"}) {
		t.Errorf("viewers %v (%v)", c.ViewerPrincipals(), err)
	}
	if _, err := parse("viewers: [\"*\"]\n"); err == nil || !strings.Contains(err.Error(), `viewer "*" must be an IAM role/user ARN or an account id`) {
		t.Errorf("viewers [*]: %v", err)
	}
}
