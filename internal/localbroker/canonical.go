package localbroker

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// The mirror of the AWS Denies (sigcheck.go, inboxmirror.go) judges a
// request by its service and operation, so it must read them as the
// emulator will execute them, whatever a job (which signs its own requests)
// makes of their spelling. moto (moto_server/werkzeug_app.py,
// core/responses.py setup_class and _get_action):
//   - routes a signed request by its credential scope's service, lower-cased;
//   - takes the operation from an Action parameter before X-Amz-Target, and
//     then after the LAST "." of X-Amz-Target;
//   - reads the parameters from a form body (form content type) merged with
//     the URL's query (the URL's value first), else from the URL's query,
//     else from the body parsed as a query whatever its content type, else
//     from the headers;
//   - for SQS, names the queue by the URL's path when there is no QueueUrl
//     or it is not a string (sqs/responses.py _get_queue_name).
//
// Rather than reproduce every turn of that, the endpoint refuses (400)
// every request an SDK never sends and on which the two readings could
// differ: requestOperation says why, or reads the operation and parameters
// they agree on.

// requestOperation is the operation of r and its top-level parameters as
// the emulator reads them, or the problem that makes r ambiguous ("" when
// none): the SDKs' JSON protocols (X-Amz-Target "Prefix.Operation", a JSON
// object body, no query string) or the query protocol (Action in a form
// body or the URL's query, no X-Amz-Target).
func requestOperation(r *http.Request, body []byte) (string, map[string]string, string) {
	if len(r.Header.Values("Action")) > 0 {
		return "", nil, "an Action header (the emulator may read it as the operation)"
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return "", nil, "Content-Encoding " + ce + " (the endpoint judges the body as sent; send it uncompressed)"
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		return "", nil, "a multipart/form-data body"
	}
	targets := r.Header.Values("X-Amz-Target")
	if len(targets) > 1 {
		return "", nil, "more than one X-Amz-Target header"
	}
	if len(targets) == 1 {
		return jsonOperation(targets[0], r, mt, body)
	}
	return queryOperation(r, mt, body)
}

// jsonOperation reads a request of the JSON protocols.
func jsonOperation(target string, r *http.Request, mt string, body []byte) (string, map[string]string, string) {
	prefix, op, _ := strings.Cut(target, ".")
	if strings.Count(target, ".") != 1 || prefix == "" || op == "" {
		return "", nil, "X-Amz-Target " + clipKey(target) + " is not Prefix.Operation (exactly one \".\")"
	}
	if r.URL.RawQuery != "" {
		return "", nil, "a query string beside X-Amz-Target (the emulator prefers an Action there)"
	}
	if mt != "application/x-amz-json-1.0" && mt != "application/x-amz-json-1.1" {
		return "", nil, "X-Amz-Target with Content-Type " + clipKey(mt) + " (want application/x-amz-json-1.0 or 1.1)"
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return "", nil, "X-Amz-Target with a body that is not a JSON object"
	}
	// The emulator parses a body as a query too when nothing else gave it
	// parameters: a JSON text with "&Action=" in it would name its operation.
	for _, pair := range strings.Split(string(body), "&") {
		k, _, _ := strings.Cut(pair, "=")
		if u, err := url.QueryUnescape(k); err == nil {
			k = u
		}
		if strings.EqualFold(strings.TrimSpace(k), "Action") {
			return "", nil, "a JSON body that also reads as a query naming an Action"
		}
	}
	params := map[string]string{}
	for k, v := range m {
		var s string
		if json.Unmarshal(v, &s) == nil {
			params[k] = s
			continue
		}
		// The emulator names an SQS request's queue by the URL's path when
		// QueueUrl is not a string ({"QueueUrl": 1}), where the mirror
		// would read the queue "1".
		if queueParams[k] {
			return "", nil, k + " is not a JSON string"
		}
		params[k] = string(v)
	}
	return op, params, ""
}

// queueParams are the parameters that name an SQS request's queue
// (queueNamed): the SDKs always send them as strings.
var queueParams = map[string]bool{"QueueUrl": true, "QueueName": true}

// queryOperation reads a request of the query protocol, from where the
// emulator takes its parameters.
func queryOperation(r *http.Request, mt string, body []byte) (string, map[string]string, string) {
	inURL, err := singleValued(r.URL.RawQuery)
	if err != "" {
		return "", nil, "the URL's query: " + err
	}
	form := mt == "application/x-www-form-urlencoded"
	var inBody url.Values
	if len(body) > 0 && (form || len(inURL) == 0) {
		if inBody, err = singleValued(string(body)); err != "" {
			return "", nil, "the body: " + err
		}
	}
	anyBody, _ := url.ParseQuery(string(body)) // the body's Action, read or not
	if a, b := inURL.Get("Action"), anyBody.Get("Action"); a != "" && b != "" && a != b {
		return "", nil, "an Action in the URL (" + clipKey(a) + ") and another in the body (" + clipKey(b) + ")"
	}
	// The emulator merges a form body with the URL's query and reads the
	// URL's value of a parameter in both (a QueueUrl: the mirror would
	// judge the body's queue, the emulator use the URL's).
	if form && len(inURL) > 0 && len(inBody) > 0 {
		return "", nil, "parameters in both the URL's query and a form body"
	}
	vals := inURL
	if len(inBody) > 0 && (form || len(inURL) == 0) {
		vals = inBody
	}
	params := map[string]string{}
	for k := range vals {
		params[k] = vals.Get(k)
	}
	return params["Action"], params, ""
}

// singleValued parses a query as both Go and the emulator do alike: no
// malformed pair (Go drops one, Python keeps it) and no key twice (Python
// keeps the last of a body's, Go reads the first).
func singleValued(q string) (url.Values, string) {
	v, err := url.ParseQuery(q)
	if err != nil {
		return nil, "malformed (" + err.Error() + ")"
	}
	for k, vs := range v {
		if len(vs) > 1 {
			return nil, "the parameter " + clipKey(k) + " is given twice"
		}
	}
	return v, ""
}

// scopeService is the service of r's credential scope, or the problem
// that makes it ambiguous: the emulator routes by the service lower-cased
// and by the first Credential, so the endpoint wants exactly one, in lower
// case, in the Authorization header the SDKs write.
func scopeService(r *http.Request) (string, string) {
	auths := r.Header.Values("Authorization")
	if len(auths) != 1 {
		return "", "want exactly one Authorization header"
	}
	rest, _ := strings.CutPrefix(auths[0], "AWS4-HMAC-SHA256 ")
	parts := strings.Split(rest, ",")
	if len(parts) != 3 || !strings.HasPrefix(strings.TrimSpace(parts[0]), "Credential=") || strings.Count(auths[0], "Credential=") != 1 {
		return "", "the Authorization header is not \"AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…\""
	}
	svc := signedService(auths[0])
	if svc == "" || svc != strings.ToLower(svc) {
		return "", "the credential scope's service " + clipKey(svc) + " is not in lower case (sign as the SDKs do: sqs, dynamodb, sns, sts, …)"
	}
	// The emulator routes by the host name "<service>.<region>.amazonaws.com"
	// it makes of the scope, matched against its services' patterns: a
	// region "sqs" or a service "queue" would reach SQS under another name.
	scope, _, _, _ := parseAuthorization(auths[0])
	if !scopeName.MatchString(svc) || svc == "queue" || len(scope) != 5 || !regionName.MatchString(scope[2]) {
		return "", "the credential scope " + clipKey(strings.Join(scope[min(len(scope), 2):], "/")) + " is not REGION/SERVICE/aws4_request as the SDKs sign it"
	}
	return svc, ""
}

// scopeName and regionName are the shapes of a credential scope's service
// and region that the emulator routes by their own names.
var (
	scopeName  = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	regionName = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)
