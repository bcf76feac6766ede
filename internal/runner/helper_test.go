package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// The test binary doubles as the job: with RUNNER_TEST_JOB set, TestMain
// behaves as the job mode it names instead of running tests.
const jobEnv = "RUNNER_TEST_JOB"

func TestMain(m *testing.M) {
	if mode := os.Getenv(jobEnv); mode != "" {
		os.Exit(testJob(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fixtureOut and fixtureErr are what the "fixture" job writes: every kind of
// byte sequence the runner must carry exactly.
func fixtureOut() []byte {
	var b bytes.Buffer
	b.WriteString("plain line\n")
	b.WriteString("\x1b[1;31mred bold\x1b[0m and \x1b[32mgreen\x1b[0m\n")
	b.WriteString("progress 10%\rprogress 55%\rprogress 100%\r\n")
	b.WriteString("\n\n")
	b.Write([]byte{0, 1, 2, 0x7f, 0x80, 0xff, 0xfe, '\n'})
	b.WriteString("invalid \xc3\x28 utf-8 \xed\xa0\x80 surrogate\n")
	b.WriteString("unicode ✓ 😀 \u2028 \xef\xbf\xbf\n")
	r := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(' ' + r.IntN(95))
	}
	big[1000], big[3<<20] = 0x1b, 0xff // a control byte and an invalid byte inside
	copy(big[2<<20:], "é😀✓")           // multi-byte characters near a piece boundary
	b.Write(big)
	b.WriteString("\n")
	b.WriteString("no trailing newline")
	return b.Bytes()
}

func fixtureErr() []byte {
	return []byte("err line\n\x00NUL\x00 inside\n\r\nlast err without newline")
}

func testJob(mode string, args []string) int {
	switch mode {
	case "fixture":
		os.Stdout.Write(fixtureOut())
		os.Stderr.Write(fixtureErr())
		return 0
	case "hardened": // hardened SCRIPT: as the runner does, make this process non-dumpable, then run SCRIPT under sh as a child
		if err := hardenRunner(false); err != nil {
			fmt.Println("harden:", err)
			return 1
		}
		c := exec.Command("/bin/sh", "-c", args[0])
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		_ = c.Run()
		return 0
	case "exit":
		n, _ := strconv.Atoi(args[0])
		fmt.Println("exiting with", n)
		return n
	case "lines": // lines N: N numbered lines on stdout
		n, _ := strconv.Atoi(args[0])
		w := bytes.NewBuffer(nil)
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "line %08d %s\n", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
			if w.Len() > 32<<10 {
				os.Stdout.Write(w.Bytes())
				w.Reset()
			}
		}
		os.Stdout.Write(w.Bytes())
		return 0
	case "deploylog": // deploylog N: realisticOutput(N) in writes of varied sizes
		n, _ := strconv.Atoi(args[0])
		writeVaried(os.Stdout, realisticOutput(n))
		return 0
	case "random": // random N: randomOutput(N) in writes of varied sizes
		n, _ := strconv.Atoi(args[0])
		writeVaried(os.Stdout, randomOutput(n))
		return 0
	case "interleave":
		for i := 0; i < 20; i++ {
			f := os.Stdout
			if i%2 == 1 {
				f = os.Stderr
			}
			fmt.Fprintf(f, "%d\n", i)
			time.Sleep(5 * time.Millisecond)
		}
		return 0
	case "echo": // echo ARGS: each argument as a line
		for _, a := range args {
			fmt.Println(a)
		}
		return 0
	case "hang": // hang [ignore-term]: start a grandchild, print both pids, wait
		if len(args) > 0 && args[0] == "ignore-term" {
			signal.Ignore(syscall.SIGTERM)
		}
		child := exec.Command("sleep", "1000")
		if err := child.Start(); err != nil {
			fmt.Println("cannot start sleep:", err)
			return 1
		}
		fmt.Printf("pids %d %d\n", os.Getpid(), child.Process.Pid)
		select {}
	case "outputs": // outputs CONTENT: writes CONTENT to $DEPLOY_BROKER_OUTPUT, exits 3
		fmt.Println("writing outputs to", os.Getenv(protocol.EnvOutput))
		if err := os.WriteFile(os.Getenv(protocol.EnvOutput), []byte(args[0]), 0o600); err != nil {
			fmt.Println("cannot write outputs:", err)
			return 1
		}
		return 3
	case "tailwait": // tailwait FIFO: a line without its newline, then wait until FIFO is opened and closed
		os.Stdout.WriteString("an unterminated last line")
		f, err := os.Open(args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		io.Copy(io.Discard, f)
		f.Close()
		return 0
	case "gated": // gated N FIFO: N lines, each after the FIFO was opened and closed once
		n, _ := strconv.Atoi(args[0])
		for i := 0; i < n; i++ {
			f, err := os.Open(args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			io.Copy(io.Discard, f)
			f.Close()
			fmt.Printf("gated %d\n", i)
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown test job", mode)
	return 2
}

// realisticOutput is n lines of deploy-like output (timestamps, varying
// ids and counts, some ANSI colour): compressible, but not repetitive.
func realisticOutput(n int) []byte {
	r := rand.New(rand.NewPCG(11, 12))
	var b bytes.Buffer
	for i := range n {
		b.Write(logLine(r, i))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// randomOutput is n random bytes (newlines included, by chance).
func randomOutput(n int) []byte {
	return randomPiece(rand.New(rand.NewPCG(13, 14)), n)
}

// writeVaried writes p in writes of 1 byte to 200 KiB.
func writeVaried(w io.Writer, p []byte) {
	r := rand.New(rand.NewPCG(15, 16))
	for len(p) > 0 {
		n := min(len(p), 1+r.IntN(200<<10))
		w.Write(p[:n])
		p = p[n:]
	}
}

// jobArgs returns the argv and env of a test job.
func jobArgs(mode string, args ...string) ([]string, []string) {
	return append([]string{os.Args[0]}, args...), append(os.Environ(), jobEnv+"="+mode)
}

// createQueue makes a FIFO run queue in moto.
func createQueue(t testing.TB, client *sqs.Client) string {
	t.Helper()
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{
		QueueName:  aws.String(fmt.Sprintf("test-%d.fifo", time.Now().UnixNano())),
		Attributes: map[string]string{"FifoQueue": "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return *out.QueueUrl
}

// run is what a test reads back from the queue: the runner's records in
// sequence order (duplicates dropped), checked for gaps.
type run struct {
	records []protocol.Record
	dups    int
}

func (r run) exit() *protocol.Exit {
	if len(r.records) == 0 {
		return nil
	}
	return r.records[len(r.records)-1].Exit
}

// streams reassembles the job's bytes per stream, and the combined output
// as "out:" / "err:" prefixed complete lines in order.
func (r run) streams(t testing.TB) (out, errOut []byte, order []string) {
	t.Helper()
	partial := map[protocol.Stream][]byte{}
	for _, rec := range r.records {
		if rec.Output == nil {
			continue
		}
		for _, l := range rec.Output.Lines {
			b, err := l.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			partial[l.Stream] = append(partial[l.Stream], b...)
			dst := &out
			if l.Stream == protocol.Stderr {
				dst = &errOut
			}
			*dst = append(*dst, b...)
			if !l.Cont {
				*dst = append(*dst, '\n')
				order = append(order, string(l.Stream)+":"+string(partial[l.Stream]))
				partial[l.Stream] = nil
			}
		}
	}
	return out, errOut, order
}

// receiveRun reads the queue until the runner's exit record, deleting as it
// goes, like the trigger does. It gives up when nothing new has arrived for
// timeout (a slow emulator under load is not a stuck run).
func receiveRun(t testing.TB, client *sqs.Client, url string, timeout time.Duration) run {
	t.Helper()
	bySeq := map[uint64]protocol.Record{}
	var r run
	var exitSeq uint64
	progress := time.Now()
	for exitSeq == 0 || uint64(len(bySeq)) < exitSeq {
		if time.Since(progress) > timeout {
			t.Fatalf("nothing new on the queue for %s (have %d records, exit seq %d)", timeout, len(bySeq), exitSeq)
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("receiving (have %d records, exit seq %d): %v", len(bySeq), exitSeq, err)
		}
		var del []sqstypes.DeleteMessageBatchRequestEntry
		for i, m := range out.Messages {
			recs, err := protocol.DecodeMessage([]byte(aws.ToString(m.Body)))
			if err != nil {
				t.Fatalf("decoding a message: %v", err)
			}
			for _, rec := range recs {
				if rec.Src != protocol.SourceRunner {
					continue
				}
				if _, dup := bySeq[rec.Seq]; dup {
					r.dups++
					continue
				}
				bySeq[rec.Seq] = rec
				progress = time.Now()
				if rec.Type == protocol.TypeExit {
					exitSeq = rec.Seq
				}
			}
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if len(del) > 0 {
			if _, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: del}); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
	}
	seqs := make([]uint64, 0, len(bySeq))
	for s := range bySeq {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("runner records have a gap: seq %d at position %d", s, i+1)
		}
		r.records = append(r.records, bySeq[s])
	}
	return r
}
