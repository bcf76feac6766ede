// Package config is the broker configuration file: one YAML document that
// drives both the local broker and the CDK stack. It names the trusted CI
// principals, the network, the runner settings and the job catalogue, the
// only list of commands, images and roles the broker will ever run.
//
// Load reads and validates it strictly (unknown keys are errors), so a bad
// catalogue fails at start-up, not on a request. Job.Render turns a request's
// parameters into the job's argv: each parameter is substituted inside argv
// elements and validated against its declaration first; nothing is ever
// joined into a shell string.
package config
