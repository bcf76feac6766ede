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
	c, err := parse("")
	if err != nil || !slices.Equal(c.ViewerPrincipals(), []string{"123456789012"}) {
		t.Errorf("default viewers %v (%v), want the trusted principals", c.ViewerPrincipals(), err)
	}
	c, err = parse("viewers: [\"arn:aws:iam::333333333333:role/auditor\"]\n")
	if err != nil || !slices.Equal(c.ViewerPrincipals(), []string{"arn:aws:iam::333333333333:role/auditor"}) {
		t.Errorf("viewers %v (%v)", c.ViewerPrincipals(), err)
	}
	if _, err := parse("viewers: [\"*\"]\n"); err == nil || !strings.Contains(err.Error(), `viewer "*" must be an IAM role/user ARN or an account id`) {
		t.Errorf("viewers [*]: %v", err)
	}
}
