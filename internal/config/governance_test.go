package config

import (
	"strings"
	"testing"
)

const govBase = `cpu: 256, memory: 512, timeout: 10m, command: [/bin/deploy]`

func TestGovernanceKeys(t *testing.T) {
	j := mustJob(t, govBase+`, concurrency: 1`)
	if !j.Limited() || j.WhenFull() != OnFullQueue || j.SlotGroup("j") != "job:j" {
		t.Errorf("concurrency 1: limited %v, policy %q, group %q", j.Limited(), j.WhenFull(), j.SlotGroup("j"))
	}
	j = mustJob(t, govBase+`, concurrency: 2, on_full: supersede, concurrency_group: prod-db`)
	if j.Concurrency != 2 || j.WhenFull() != OnFullSupersede || j.SlotGroup("j") != "group:prod-db" {
		t.Errorf("got %+v", j.Governance)
	}
	if j := mustJob(t, govBase); j.Limited() {
		t.Error("a job without concurrency is limited")
	}
	wantConfigError(t, govBase+`, concurrency: -1`, "concurrency -1 must be at least 1")
	wantConfigError(t, govBase+`, on_full: reject`, "on_full and concurrency_group need concurrency")
	wantConfigError(t, govBase+`, concurrency: 1, on_full: wait`, `on_full "wait" must be queue, reject or supersede`)
	wantConfigError(t, govBase+`, concurrency: 1, concurrency_group: Prod_DB`, `concurrency_group "Prod_DB" must be`)
	wantConfigError(t, govBase+`, concurrency: 1, on_fuLL: reject`, "on_fuLL")
	// A waiting run keeps its request in the ledger: no secret parameter.
	secret := `cpu: 256, memory: 512, timeout: 10m, command: [/bin/deploy, "{{t}}"], params: {t: {type: string, pattern: '[a-z]+', secret: true, required: true}}, concurrency: 1`
	wantConfigError(t, secret, "must use on_full: reject")
	mustJob(t, secret+`, on_full: reject`)
}

func TestConcurrencyGroupSizesMustAgree(t *testing.T) {
	_, err := Parse([]byte("broker: {name: b}\ntrusted_principals: [\"123456789012\"]\nrunner: {image: i}\njobs:\n" +
		"  a: {" + govBase + ", concurrency: 1, concurrency_group: db}\n  b: {" + govBase + ", concurrency: 2, concurrency_group: db}\n"))
	if err == nil || !strings.Contains(err.Error(), `concurrency_group "db": its jobs declare different concurrency`) {
		t.Errorf("err = %v", err)
	}
}

// Issue 24: a group has one on_full. With two, a job whose on_full is
// supersede replaced the waiting runs of another job of the group.
func TestConcurrencyGroupOnFullMustAgree(t *testing.T) {
	_, err := Parse([]byte("broker: {name: b}\ntrusted_principals: [\"123456789012\"]\nrunner: {image: i}\njobs:\n" +
		"  deploy-prod: {" + govBase + ", concurrency: 1, concurrency_group: prod}\n  website: {" + govBase + ", concurrency: 1, concurrency_group: prod, on_full: supersede}\n"))
	if err == nil || !strings.Contains(err.Error(), `concurrency_group "prod": its jobs declare different on_full (queue: deploy-prod; supersede: website)`) {
		t.Errorf("err = %v", err)
	}
	// The default (queue) and an explicit queue agree.
	if _, err := Parse([]byte("broker: {name: b}\ntrusted_principals: [\"123456789012\"]\nrunner: {image: i}\njobs:\n" +
		"  a: {" + govBase + ", concurrency: 1, concurrency_group: db}\n  b: {" + govBase + ", concurrency: 1, concurrency_group: db, on_full: queue}\n")); err != nil {
		t.Errorf("queue and the default queue: %v", err)
	}
}

func TestGovernanceExampleLoads(t *testing.T) {
	c, err := Load("../../examples/governance/broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, r := c.Jobs["migrate-production"], c.Jobs["refresh-reporting"]
	if m.Concurrency != 1 || m.WhenFull() != OnFullQueue || len(m.Approvers) != 1 || m.SlotGroup("migrate-production") != r.SlotGroup("refresh-reporting") {
		t.Errorf("example jobs: %+v %+v", m.Governance, r.Governance)
	}
}

func TestApproversKey(t *testing.T) {
	j := mustJob(t, govBase+`, approvers: ["arn:aws:iam::111111111111:role/release-manager"]`)
	if len(j.Approvers) != 1 {
		t.Errorf("approvers %v", j.Approvers)
	}
	wantConfigError(t, govBase+`, approvers: ["*"]`, `approvers entry "*"`)
	secret := `cpu: 256, memory: 512, timeout: 10m, command: [/bin/deploy, "{{t}}"], params: {t: {type: string, pattern: '[a-z]+', secret: true, required: true}}`
	wantConfigError(t, secret+`, approvers: ["arn:aws:iam::111111111111:role/release-manager"]`, "cannot require approval")
}

func TestWarmKey(t *testing.T) {
	if j := mustJob(t, govBase+`, warm: 2`); j.Warm != 2 {
		t.Errorf("warm: 2 read as %d", j.Warm)
	}
	if j := mustJob(t, govBase); j.Warm != 0 {
		t.Errorf("no warm key read as %d", j.Warm)
	}
	wantConfigError(t, govBase+`, warm: -1`, "warm -1 must be between 0 and 20")
	wantConfigError(t, govBase+`, warm: 21`, "warm 21 must be between 0 and 20")
}
