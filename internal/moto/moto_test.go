package moto

import (
	"context"
	"strings"
	"testing"
)

func TestStartMissingBinaryHint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Start(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), `pip install "moto[server]"`) {
		t.Fatalf("err = %v, want the install hint", err)
	}
}

func TestStartAnswers(t *testing.T) {
	s, err := Start(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %q is not on loopback", s.URL)
	}
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
}
