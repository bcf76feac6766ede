package trigger

import (
	"errors"
	"strings"
	"testing"
)

// chunkLog records every write to either stream, in the order they reach it.
type chunkLog struct{ writes []string }

type chunkWriter struct {
	log  *chunkLog
	name string
	err  error
}

func (w chunkWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.log.writes = append(w.log.writes, w.name+":"+string(p))
	return len(p), nil
}

func TestOrderedOutputKeepsTheOrderAcrossStreamsAndCoalescesRuns(t *testing.T) {
	var log chunkLog
	o := newOrderedOutput(chunkWriter{&log, "out", nil}, chunkWriter{&log, "err", nil})
	for _, w := range []struct {
		err  bool
		text string
	}{{false, "a\n"}, {false, "b\n"}, {true, "c\n"}, {false, "d\n"}, {false, "e\n"}, {true, "f\n"}} {
		dst := o.stdout()
		if w.err {
			dst = o.stderr()
		}
		if _, err := dst.Write([]byte(w.text)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []string{"out:a\nb\n", "err:c\n", "out:d\ne\n", "err:f\n"}
	if strings.Join(log.writes, "|") != strings.Join(want, "|") {
		t.Fatalf("writes %q, want %q", log.writes, want)
	}
}

func TestOrderedOutputFlushesWhenFullAndReportsWriteErrors(t *testing.T) {
	var log chunkLog
	o := newOrderedOutput(chunkWriter{&log, "out", nil}, chunkWriter{&log, "err", errors.New("broken pipe")})
	big := strings.Repeat("x", maxPendingOutput)
	if _, err := o.stdout().Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	if len(log.writes) != 1 {
		t.Fatalf("a full buffer was not flushed at once: %d writes", len(log.writes))
	}
	if _, err := o.stderr().Write([]byte("lost\n")); err != nil {
		t.Fatal(err) // buffered: the error shows at the flush
	}
	if err := o.Flush(); err == nil || err.Error() != "broken pipe" {
		t.Fatalf("flush error %v, want the write error", err)
	}
	if _, err := o.stderr().Write([]byte("more\n")); err == nil {
		t.Fatal("a write to the failed stream succeeded")
	}
	// The other stream goes on: the final error line must still get out.
	if _, err := o.stdout().Write([]byte("still here\n")); err != nil {
		t.Fatalf("stdout stopped with stderr: %v", err)
	}
	_ = o.Flush()
	if last := log.writes[len(log.writes)-1]; last != "out:still here\n" {
		t.Errorf("last write %q", last)
	}
}
