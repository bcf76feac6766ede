package config

import (
	"strings"
	"testing"
	"time"
)

func TestFloodSettings(t *testing.T) {
	parse := func(broker string) (*Config, error) {
		return Parse([]byte("broker: {name: b" + broker + "}\ntrusted_principals: [\"123456789012\"]\nrunner: {image: i}\njobs:\n  j: {command: [/bin/true]}\n"))
	}
	c, err := parse("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Broker.MaxOpenRunsPerPrincipal != 10 || c.Broker.RejectedQueueRetention.D() != 5*time.Minute {
		t.Errorf("defaults: max_open_runs_per_principal %d, rejected_queue_retention %s", c.Broker.MaxOpenRunsPerPrincipal, c.Broker.RejectedQueueRetention.D())
	}
	// A queue retention shorter than the default rejected retention bounds it.
	if c, err := parse(", queue_retention: 2m"); err != nil || c.Broker.RejectedQueueRetention.D() != 2*time.Minute {
		t.Errorf("queue_retention 2m: %v %+v", err, c)
	}
	if c, err := parse(", max_open_runs_per_principal: 3, rejected_queue_retention: 10m"); err != nil || c.Broker.MaxOpenRunsPerPrincipal != 3 {
		t.Errorf("explicit settings: %v", err)
	}
	for broker, want := range map[string]string{
		", max_open_runs_per_principal: -1":                   "broker.max_open_runs_per_principal -1 must be between 1 and 500",
		", max_open_runs_per_principal: 501":                  "broker.max_open_runs_per_principal 501",
		", rejected_queue_retention: 10s":                     "broker.rejected_queue_retention 10s must be at least 30s",
		", rejected_queue_retention: 2h":                      "at most broker.queue_retention (1h0m0s)",
		", queue_retention: 1m, rejected_queue_retention: 5m": "broker.rejected_queue_retention 5m0s",
	} {
		if _, err := parse(broker); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", broker, err, want)
		}
	}
}
