package localbroker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Recorder notes every AWS call local mode's components make, with who made
// it, so that a test can evaluate each against the stack's IAM policies
// (infra/internal/iamcheck). Each component signs with credentials of its
// own (ComponentKeys): the dispatcher, each job's task, the agent and the
// SNS loop (which stand in for ECS and SNS themselves), deploy-trigger's
// identity and every session assumed through the endpoint (learnt from the
// AssumeRole answer). The principal of a call is read from the access key
// of its SigV4 credential scope, never from anything else in the request.
type Recorder struct {
	mu    sync.Mutex
	calls []Call
	keys  map[string]string // access key id → principal
}

// Call is one recorded AWS request.
type Call struct {
	// Principal is who signed: a component ("dispatcher", "task:<family>",
	// "ecs-agent", "sns-delivery", "provision") or an assumed-role session
	// ARN; "key:<id>" for a key nobody named.
	Principal string
	Service   string            // the SigV4 signing name: sns, sqs, dynamodb, logs, ecs, sts, …
	Operation string            // the API operation, e.g. SendMessage
	Params    map[string]string // top-level request parameters (JSON members as JSON text)
	Status    int               // the emulator's HTTP status
	// Result holds what a later evaluation needs from the answer: the
	// task ARN of RunTask, the queue URL of CreateQueue.
	Result map[string]string
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{keys: map[string]string{}} }

// Name tells the recorder whose access key id is key.
func (r *Recorder) Name(key, principal string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys[key] = principal
}

// Calls is a copy of the calls recorded so far, in order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Component access key ids: each of local mode's own components signs with
// one (moto serves any key it did not issue from its default account, the
// broker's).
const (
	dispatcherKey = "AKIALOCALDISPATCHER0"
	taskKeyPrefix = "AKIALOCALTASK"
)

// componentSecret is the secret key of the component keys, random for
// each process: their ids are in this source, so a fixed secret would let
// a job sign as its runner at local mode's endpoint, which verifies
// signatures (sigcheck.go).
var componentSecret = func() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

// taskKey is the access key id of the tasks of the i-th job.
func taskKey(i int) string { return fmt.Sprintf("%s%07d", taskKeyPrefix, i) }

// maxRecordedBody bounds what the recorder reads of a request or answer
// body to parse it (run queue policies and log batches are well below it).
const maxRecordedBody = 4 << 20

// wrap returns next with every request recorded.
func (r *Recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, maxRecordedBody+1))
		if err != nil || len(body) > maxRecordedBody {
			http.Error(w, "request body too large to record", http.StatusRequestEntityTooLarge)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		c := Call{Service: signedService(req.Header.Get("Authorization"))}
		c.Operation, c.Params = operation(req, body)
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, req)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		c.Status = rec.Code
		c.Result = result(c, rec.Body.Bytes())
		key := accessKey(req.Header.Get("Authorization"))
		r.mu.Lock()
		defer r.mu.Unlock()
		if c.Service == "sts" && c.Operation == "AssumeRole" && c.Status == http.StatusOK && c.Result["AccessKeyId"] != "" {
			r.keys[c.Result["AccessKeyId"]] = c.Result["Arn"]
		}
		if p, ok := r.keys[key]; ok {
			c.Principal = p
		} else {
			c.Principal = "key:" + key
		}
		r.calls = append(r.calls, c)
	})
}

// accessKey is the access key id of a SigV4 Authorization header.
func accessKey(auth string) string {
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	k, _, _ := strings.Cut(rest, "/")
	return k
}

// operation is the API operation of a request and its top-level
// parameters as the emulator reads them (canonical.go); none for a request
// local mode's endpoint refuses as ambiguous.
func operation(req *http.Request, body []byte) (string, map[string]string) {
	op, params, problem := requestOperation(req, body)
	if problem != "" {
		return "", map[string]string{}
	}
	return op, params
}

// result keeps the parts of an answer an evaluation needs.
func result(c Call, body []byte) map[string]string {
	out := map[string]string{}
	switch c.Service + ":" + c.Operation {
	case "sts:AssumeRole":
		var a struct {
			Result struct {
				Credentials     struct{ AccessKeyId string }
				AssumedRoleUser struct{ Arn string }
			} `xml:"AssumeRoleResult"`
		}
		if xml.Unmarshal(body, &a) == nil {
			out["AccessKeyId"], out["Arn"] = a.Result.Credentials.AccessKeyId, a.Result.AssumedRoleUser.Arn
		}
	case "ecs:RunTask":
		var a struct{ Tasks []struct{ TaskArn string } }
		if json.Unmarshal(body, &a) == nil && len(a.Tasks) > 0 {
			out["TaskArn"] = a.Tasks[0].TaskArn
		}
	case "sqs:CreateQueue":
		var a struct{ QueueUrl string }
		if json.Unmarshal(body, &a) == nil {
			out["QueueUrl"] = a.QueueUrl
		}
	}
	return out
}

// serve starts a recording proxy to target on 127.0.0.1 and returns its URL.
func (r *Recorder) serve(target string) (*http.Server, string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	srv := &http.Server{Handler: refuseBrowsers(r.wrap(rp)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, "http://" + ln.Addr().String(), nil
}

// Sweep runs the dispatcher's sweep once, as its schedule does: for tests
// that want its calls without waiting for SweepInterval.
func (b *Broker) Sweep(ctx context.Context) error {
	ev := fmt.Sprintf(`{"version":"0","id":"local-sweep","detail-type":"Scheduled Event","source":"aws.events","account":%q,"time":%q,"region":%q,"resources":[],"detail":{}}`,
		b.Resources.AccountID, time.Now().UTC().Format(time.RFC3339), b.Resources.Region)
	return b.invoke(ctx, []byte(ev))
}
