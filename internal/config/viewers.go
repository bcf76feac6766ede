package config

// Viewers (issue 17): the principals that may read the run history (the
// ledger's history index) and the run logs, through the stack's reader
// role. They read only: viewing never lets anyone start or cancel a run.
//
// Every run's full output is in the run log, so a viewer reads every run,
// whoever requested it. Issue 22: there is no default. Defaulting to the
// trusted principals would let each CI principal read the others' runs,
// which the run queues' policies deny (docs/ARCHITECTURE.md, threats);
// whoever should read all runs is named here.

// ViewerPrincipals is viewers: empty (no reader role) when unset.
func (c *Config) ViewerPrincipals() []string { return c.Viewers }

func (c *Config) validateViewers(bad func(format string, a ...any)) {
	for _, p := range c.Viewers {
		if p == "*" || !principalRE.MatchString(p) {
			bad("viewer %q must be an IAM role/user ARN or an account id (never \"*\")", p)
		}
	}
}
