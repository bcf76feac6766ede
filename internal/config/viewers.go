package config

// Viewers (issue 17): the principals that may read the run history (the
// ledger's history index) and the run logs, through the stack's reader
// role. They read only: viewing never lets anyone start or cancel a run.

// ViewerPrincipals is viewers, or the trusted principals when it is unset.
func (c *Config) ViewerPrincipals() []string {
	if len(c.Viewers) > 0 {
		return c.Viewers
	}
	return c.TrustedPrincipals
}

func (c *Config) validateViewers(bad func(format string, a ...any)) {
	for _, p := range c.Viewers {
		if p == "*" || !principalRE.MatchString(p) {
			bad("viewer %q must be an IAM role/user ARN or an account id (never \"*\")", p)
		}
	}
}
