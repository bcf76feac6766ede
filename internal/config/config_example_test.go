package config

import "testing"

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load("../../examples/broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	argv, err := c.Jobs["website"].Render(map[string]string{"version": "1.4.2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/bin/sh", "jobs/website.sh", "--version", "1.4.2", "--colour=blue"}
	if len(argv) != len(want) {
		t.Fatalf("argv = %q, want %q", argv, want)
	}
	for i := range want {
		if argv[i] != want[i] {
			t.Fatalf("argv = %q, want %q", argv, want)
		}
	}
}
