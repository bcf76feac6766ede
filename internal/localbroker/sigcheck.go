package localbroker

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/config"
)

// keyring is what local mode's endpoint (accountShim) knows of the access
// keys it accepts, so that it verifies every request's SigV4 signature
// itself: moto checks none by default, and its own checking cannot be used
// (the shim names the broker's account for a session moto stores under
// another). Its keys are the components' (added at Start) and every session
// assumed through the endpoint, learnt from the AssumeRole answer it
// relays. A request signed with any other key, with a wrong secret or with
// another session token is refused as AWS refuses it.
//
// It also mirrors, narrowly, the statements that keep a job's deployment
// session off the run queues in AWS (runQueueDenies). It is no IAM
// evaluator: infra/internal/iamcheck is.
type keyring struct {
	mu   sync.RWMutex
	keys map[string]endpointKey
	// jobRole is the ARN prefix of the deployment roles local mode's
	// runners assume ("arn:aws:iam::<account>:role/deploy-broker-local/").
	jobRole string
	// runQueue is the name prefix of run queues ("<broker>-").
	runQueue string
	// viewTable is the broker's view table, whose run pointers say which
	// queue a trigger reads (issue 26).
	viewTable string
	// broker names the inboxes (protocol.InboxName), and the cluster, run
	// ledger and run log group (guardmirror.go).
	broker string
}

// endpointKey is one access key the endpoint accepts.
type endpointKey struct {
	secret, token string
	// job: a job's deployment session, or one assumed from it.
	job bool
	// runner: a runner's task role (the only keys that may read a warm
	// runner's inbox, inboxmirror.go).
	runner bool
}

func newKeyring(account, broker string) *keyring {
	return &keyring{keys: map[string]endpointKey{},
		jobRole: "arn:aws:iam::" + account + ":role" + DeploymentRolePath, runQueue: broker + "-", viewTable: brokerview.TableName(broker), broker: broker}
}

func (k *keyring) add(c aws.Credentials, job bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[c.AccessKeyID] = endpointKey{secret: c.SecretAccessKey, token: c.SessionToken, job: job}
}

// maxSignedBody bounds the request body the endpoint reads to hash it
// (SNS's and SQS's own limits are 256 KiB; log batches are at most 1 MiB).
const maxSignedBody = 2 << 20

// guard returns next with every request's signature verified, the run
// queues refused to jobs' sessions, and sessions assumed through it learnt.
func (k *keyring) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxSignedBody+1))
		if err != nil || len(body) > maxSignedBody {
			awsError(w, r, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("local mode's endpoint reads request bodies up to %d bytes", maxSignedBody))
			return
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		key, code, msg := k.verify(r, body)
		if code != "" {
			awsError(w, r, http.StatusForbidden, code, msg)
			return
		}
		svc, problem := scopeService(r) // canonical.go
		op, params, opProblem := requestOperation(r, body)
		if problem == "" {
			problem = opProblem
		}
		if problem == "" && (svc == "sqs" || svc == "dynamodb") && op == "" {
			problem = "no operation (X-Amz-Target or Action)"
		}
		if problem != "" {
			awsError(w, r, http.StatusBadRequest, "InvalidRequest", "local mode's endpoint refuses requests it cannot read as the emulator will: "+problem+"; send requests as the AWS SDKs and CLI do")
			return
		}
		if svc == "sqs" && params["QueueUrl"] == "" && strings.Trim(r.URL.Path, "/") != "" {
			params["QueueUrl"] = r.URL.Path // the emulator names the queue by the path then
		}
		if sid := k.inboxDenied(key, svc, op, params); sid != "" { // inboxmirror.go
			awsError(w, r, http.StatusForbidden, "AccessDenied", fmt.Sprintf("sqs:%s on a warm runner's inbox: explicit deny in %s (local mode mirrors it; moto evaluates no IAM)", op, sid))
			return
		}
		if sid := k.jobRunQueueDenied(key, svc, op, params); sid != "" {
			awsError(w, r, http.StatusForbidden, "AccessDenied", fmt.Sprintf("a job's deployment session may not call sqs:%s on a run queue: explicit deny in %s (local mode mirrors it; moto evaluates no IAM)", op, sid))
			return
		}
		if sid := k.jobViewDenied(key, svc, op, body); sid != "" { // viewmirror.go
			awsError(w, r, http.StatusForbidden, "AccessDeniedException", fmt.Sprintf("a job's deployment session may not call dynamodb:%s on the broker's view table: explicit deny in %s (local mode mirrors it; moto evaluates no IAM)", op, sid))
			return
		}
		if what, sid := k.jobGuardDenied(key, svc, params, body); sid != "" { // guardmirror.go
			awsError(w, r, http.StatusForbidden, "AccessDeniedException", fmt.Sprintf("a job's deployment session may not call %s:%s on %s: explicit deny in %s (local mode mirrors it; moto evaluates no IAM)", svc, op, what, sid))
			return
		}
		if svc != "sts" || op != "AssumeRole" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if c, ok := assumedCredentials(rec.Code, rec.Body.Bytes()); ok {
			k.add(c, key.job || strings.HasPrefix(params["RoleArn"], k.jobRole))
		}
		for h, v := range rec.Header() {
			w.Header()[h] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// verify recomputes r's SigV4 signature with the secret of its access key
// over the same canonical request (method, path, query, Host, the signed
// headers, X-Amz-Date, the body's hash) and compares it in constant time.
// It returns the key, or the AWS error code and message to refuse with.
func (k *keyring) verify(r *http.Request, body []byte) (endpointKey, string, string) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return endpointKey{}, "MissingAuthenticationToken", "local mode's endpoint accepts SigV4-signed requests only (an Authorization header)"
	}
	id := accessKey(auth)
	k.mu.RLock()
	key, ok := k.keys[id]
	k.mu.RUnlock()
	if !ok {
		return key, "InvalidClientTokenId", "The security token included in the request is invalid: local mode knows no access key " + clipKey(id) + " (use the credentials of the env file broker-local writes)"
	}
	if !hmac.Equal([]byte(r.Header.Get("X-Amz-Security-Token")), []byte(key.token)) {
		return key, "InvalidClientTokenId", "The security token included in the request is invalid"
	}
	scope, signed, sig, ok := parseAuthorization(auth)
	if !ok {
		return key, "IncompleteSignature", "the Authorization header is not a SigV4 signature"
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return key, "IncompleteSignature", "the request has no valid X-Amz-Date header"
	}
	// The request as the client signed it: its signed headers only; the
	// signer itself adds Host, X-Amz-Date, the session token and
	// Content-Length.
	re, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return key, "SignatureDoesNotMatch", "the request's URL cannot be signed"
	}
	re.Host = r.Host
	for _, h := range signed {
		switch h {
		case "host", "x-amz-date", "x-amz-security-token", "authorization":
		case "content-length":
			re.ContentLength = r.ContentLength
		default:
			re.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	hash := r.Header.Get("X-Amz-Content-Sha256")
	if hash == "" {
		sum := sha256.Sum256(body)
		hash = hex.EncodeToString(sum[:])
	}
	creds := aws.Credentials{AccessKeyID: id, SecretAccessKey: key.secret, SessionToken: key.token}
	err = v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = scope[3] == "s3" }).
		SignHTTP(context.Background(), creds, re, hash, scope[3], scope[2], when)
	if err != nil {
		return key, "SignatureDoesNotMatch", "the request cannot be signed again to verify it"
	}
	_, _, want, _ := parseAuthorization(re.Header.Get("Authorization"))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return key, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
	}
	return key, "", ""
}

// parseAuthorization splits "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/
// SERVICE/aws4_request, SignedHeaders=a;b, Signature=hex".
func parseAuthorization(auth string) (scope, signed []string, sig string, ok bool) {
	rest, found := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !found {
		return nil, nil, "", false
	}
	for _, part := range strings.Split(rest, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch name {
		case "Credential":
			scope = strings.Split(val, "/")
		case "SignedHeaders":
			signed = strings.Split(val, ";")
		case "Signature":
			sig = val
		}
	}
	return scope, signed, sig, len(scope) == 5 && len(signed) > 0 && sig != ""
}

// runQueueDenies mirrors, per SQS operation, the explicit Denies AWS
// applies to a job's deployment session on a run queue: the role's
// broker-guard policy (infra/internal/broker/jobguard.go:
// NeverWriteToRunQueues, and NeverTamperWithRunQueues over
// JobDeniedRunQueueActions) and the run queue's own policy
// (dispatcher.QueuePolicy: OnlyBrokerWritesOrManagesRun for writes and
// management, OnlyRequesterReadsRun for reads). A batch is authorised as
// its single action. Operations AWS does not deny (GetQueueUrl,
// ListQueueTags) are not denied here either.
var runQueueDenies = map[string]string{
	"SendMessage":                  "broker-guard's NeverWriteToRunQueues and the run queue policy's OnlyBrokerWritesOrManagesRun",
	"SendMessageBatch":             "broker-guard's NeverWriteToRunQueues and the run queue policy's OnlyBrokerWritesOrManagesRun",
	"ReceiveMessage":               "broker-guard's NeverTamperWithRunQueues and the run queue policy's OnlyRequesterReadsRun",
	"DeleteMessage":                "broker-guard's NeverTamperWithRunQueues and the run queue policy's OnlyRequesterReadsRun",
	"DeleteMessageBatch":           "broker-guard's NeverTamperWithRunQueues and the run queue policy's OnlyRequesterReadsRun",
	"ChangeMessageVisibility":      "broker-guard's NeverTamperWithRunQueues and the run queue policy's OnlyRequesterReadsRun",
	"ChangeMessageVisibilityBatch": "broker-guard's NeverTamperWithRunQueues and the run queue policy's OnlyRequesterReadsRun",
	"PurgeQueue":                   "broker-guard's NeverTamperWithRunQueues and the run queue policy's OnlyRequesterReadsRun",
	"DeleteQueue":                  "broker-guard's NeverTamperWithRunQueues and the run queue policy's OnlyBrokerWritesOrManagesRun",
	"SetQueueAttributes":           "broker-guard's NeverTamperWithRunQueues and the run queue policy's OnlyBrokerWritesOrManagesRun",
	"AddPermission":                "broker-guard's NeverTamperWithRunQueues and the run queue policy's OnlyBrokerWritesOrManagesRun",
	"RemovePermission":             "broker-guard's NeverTamperWithRunQueues and the run queue policy's OnlyBrokerWritesOrManagesRun",
	"TagQueue":                     "broker-guard's NeverTamperWithRunQueues and the run queue policy's OnlyBrokerWritesOrManagesRun",
	"UntagQueue":                   "broker-guard's NeverTamperWithRunQueues and the run queue policy's OnlyBrokerWritesOrManagesRun",
	"GetQueueAttributes":           "the run queue policy's OnlyRequesterReadsRun",
	"CreateQueue":                  "broker-guard's NeverTamperWithRunQueues",
}

// jobRunQueueDenied names the statements that deny a job's deployment
// session (or a session assumed from one) op on the run queue the request
// names ("" when none does). It is the narrow mirror of runQueueDenies for
// the one principal local mode's tests attack from, not an IAM evaluator.
func (k *keyring) jobRunQueueDenied(key endpointKey, svc, op string, params map[string]string) string {
	sid := runQueueDenies[op]
	if !key.job || svc != "sqs" || sid == "" {
		return ""
	}
	name := queueNamed(params)
	if !strings.HasPrefix(name, k.runQueue) || !strings.HasSuffix(name, ".fifo") {
		return ""
	}
	return sid
}

// assumedCredentials reads the credentials of an AssumeRole answer.
func assumedCredentials(code int, body []byte) (aws.Credentials, bool) {
	var a struct {
		Result struct {
			Credentials struct{ AccessKeyId, SecretAccessKey, SessionToken string }
		} `xml:"AssumeRoleResult"`
	}
	if code != http.StatusOK || xml.Unmarshal(body, &a) != nil || a.Result.Credentials.AccessKeyId == "" {
		return aws.Credentials{}, false
	}
	c := a.Result.Credentials
	return aws.Credentials{AccessKeyID: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}, true
}

// awsError answers as AWS does, in the request's protocol: JSON for the
// JSON protocols (an X-Amz-Target header), the query protocol's XML else.
func awsError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if r.Header.Get("X-Amz-Target") != "" {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amzn-Query-Error", code+";Sender")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}{code, msg})
		return
	}
	var esc bytes.Buffer
	_ = xml.EscapeText(&esc, []byte(msg))
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>local</RequestId></ErrorResponse>`, code, esc.String())
}

// clipKey shows enough of an access key id to recognise it.
func clipKey(id string) string {
	if len(id) > 24 {
		return id[:24] + "…"
	}
	return id
}

// endpointKeys is the keyring of the endpoint: the components that call
// through it (the runners with their tasks' keys, the dispatcher) and
// deploy-trigger's Identity; sessions assumed through it are learnt.
func (b *Broker) endpointKeys(cfg *config.Config) *keyring {
	k := newKeyring(b.Resources.AccountID, cfg.Broker.Name)
	k.add(aws.Credentials{AccessKeyID: dispatcherKey, SecretAccessKey: componentSecret}, false)
	for i := range cfg.JobNames() {
		k.keys[taskKey(i)] = endpointKey{secret: componentSecret, runner: true} // a runner's task role
	}
	if b.Identity != nil {
		k.add(b.Identity.Creds, false)
	}
	return k
}

// Trust makes the endpoint accept c, a session made in the emulator
// without it (EnvAs, tests that assume roles at the emulator directly):
// sessions assumed through the endpoint are learnt by themselves.
func (b *Broker) Trust(c aws.Credentials) {
	if b.shim != nil {
		b.shim.keys.add(c, false)
	}
}

// JobDeniedRunQueueOps lists the SQS operations local mode refuses a job's
// deployment session on a run queue (runQueueDenies): the stack's tests
// check it covers every action the job guard denies, so the mirror cannot
// drift from infra's JobDeniedRunQueueActions.
func JobDeniedRunQueueOps() []string {
	ops := make([]string, 0, len(runQueueDenies))
	for op := range runQueueDenies {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}

// queueNamed is the name of the queue an SQS request names: its QueueUrl's
// last segment, or its QueueName (CreateQueue, GetQueueUrl).
func queueNamed(params map[string]string) string {
	u := params["QueueUrl"]
	if u == "" {
		u = params["QueueName"]
	}
	return u[strings.LastIndex(u, "/")+1:]
}
