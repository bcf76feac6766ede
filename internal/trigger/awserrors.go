package trigger

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
)

// apiCode is the AWS error code of err, or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isQueueMissing(err error) bool {
	var nf *sqstypes.QueueDoesNotExist
	if errors.As(err, &nf) {
		return true
	}
	switch apiCode(err) {
	case "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue":
		return true
	}
	return false
}

func isAccessDenied(err error) bool {
	switch apiCode(err) {
	case "AccessDenied", "AccessDeniedException", "AuthorizationError", "AuthorizationErrorException",
		"KMSAccessDenied", "KMSAccessDeniedException", "KMS.AccessDeniedException":
		return true
	}
	return false
}

func isExpiredCredentials(err error) bool {
	switch apiCode(err) {
	case "ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired":
		return true
	}
	return false
}

func isInvalidCredentials(err error) bool {
	switch apiCode(err) {
	case "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "IncompleteSignature":
		return true
	}
	return false
}

// isNoCredentials recognises the SDK's "found no credentials anywhere":
// the default chain fell through to the EC2 instance metadata service,
// which answered nothing (or could not be reached). Classified by type: a
// network error elsewhere, or a profile whose credentials failed
// (a network error from STS under *profileCredentialsError), is not "no
// credentials".
func isNoCredentials(err error) bool {
	// Every operation error in the chain: the outer one is the call that
	// needed the credentials (STS, SNS…), an inner one the IMDS lookup.
	for ; err != nil; err = errors.Unwrap(err) {
		if op, ok := err.(*smithy.OperationError); ok && op.ServiceID == "ec2imds" {
			return true
		}
	}
	return false
}

// isNetworkError reports whether err is a failure to reach AWS (DNS,
// connection refused or reset, timeout) rather than an answer from it.
func isNetworkError(err error) bool {
	var send *smithyhttp.RequestSendError
	var ne net.Error
	var dns *net.DNSError
	return errors.As(err, &send) || errors.As(err, &dns) || errors.As(err, &ne)
}

// profileCredentialsError is a failure to get a profile's credentials
// (assuming its role, with or without MFA), said as one sentence.
type profileCredentialsError struct {
	profile  string
	role     string // --role-arn, when the trigger assumes it itself
	endpoint string
	err      error
}

// whose names the credentials: "profile deployer", "role arn:… (assumed with profile deployer)".
func (e *profileCredentialsError) whose() string {
	switch {
	case e.role != "" && e.profile != "":
		return "role " + e.role + " (assumed with profile " + e.profile + ")"
	case e.role != "":
		return "role " + e.role
	}
	return "profile " + e.profile
}

func (e *profileCredentialsError) Error() string {
	where := "AWS STS"
	if e.endpoint != "" {
		where = "STS at " + e.endpoint
	}
	switch {
	case isNetworkError(e.err):
		return fmt.Sprintf("could not reach %s to get the credentials of %s (%v)", where, e.whose(), innermost(e.err))
	case apiCode(e.err) != "":
		return fmt.Sprintf("%s refused the credentials of %s: %s: %s", where, e.whose(), apiCode(e.err), apiMessage(e.err))
	}
	return fmt.Sprintf("getting the credentials of %s failed: %v", e.whose(), e.err)
}

func (e *profileCredentialsError) Unwrap() error { return e.err }

// innermost is the deepest wrapped error: for a network failure, the
// operating system's words ("connection refused").
func innermost(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// profileCredentials names the profile in its errors.
type profileCredentials struct {
	inner    aws.CredentialsProvider
	profile  string
	role     string
	endpoint string
}

func (p *profileCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.inner.Retrieve(ctx)
	if err != nil {
		var mfa *mfaError
		if errors.As(err, &mfa) {
			return c, err
		}
		return c, &profileCredentialsError{profile: p.profile, role: p.role, endpoint: p.endpoint, err: err}
	}
	return c, nil
}

// apiMessage is the AWS error message, or the error text.
func apiMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorMessage() != "" {
		return ae.ErrorMessage()
	}
	return err.Error()
}

// credentialsError is err said in one line with its exit code when it is
// about the credentials themselves (an MFA code that cannot be had, none
// found, expired, not recognised), else nil.
func credentialsError(ctx context.Context, c clients, err error, doing string) error {
	var mfa *mfaError
	if errors.As(err, &mfa) || isExpiredCredentials(err) || isInvalidCredentials(err) || isNoCredentials(err) {
		return describeAWSError(ctx, c, err, doing, "working AWS credentials")
	}
	return nil
}

// firstCallError classifies the error of the invocation's first AWS call
// (preflight's sts:GetCallerIdentity), when it shows that nothing can be
// published: credentials (credentialsError), or an endpoint that cannot be
// reached at all (unreachableError). Otherwise nil: publishing is still
// tried, and reports what it meets.
func firstCallError(ctx context.Context, c clients, err error) error {
	if cerr := credentialsError(ctx, c, err, "checking who these credentials are (sts:GetCallerIdentity)"); cerr != nil {
		return cerr
	}
	return unreachableError(err, c.stsEndpoint)
}

// unreachableError says in one line why AWS could not be reached, when the
// cause is certain and lasting: nothing listens at the endpoint
// (connection refused), or its host name does not resolve. With a single
// endpoint for every service (AWS_ENDPOINT_URL: local mode) any failure to
// connect other than a timeout counts, since publishing goes there too.
// nil for anything else.
func unreachableError(err error, endpoint string) error {
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) && endpoint != "":
		return exitcode.Errorf(exitcode.Broker, "nothing answers at %s, the AWS endpoint AWS_ENDPOINT_URL names (connection refused): is the local broker running? "+
			"Start it (make demo, or deploy-broker-local -env-file FILE) and use the environment it writes, or unset AWS_ENDPOINT_URL to reach AWS itself", endpoint)
	case errors.Is(err, syscall.ECONNREFUSED):
		return exitcode.Errorf(exitcode.Broker, "nothing answers at %s (connection refused): check the network, a proxy (HTTPS_PROXY) or a firewall", requestHost(err))
	case errors.As(err, &dns) && dns.IsNotFound:
		return exitcode.Errorf(exitcode.Broker, "the host name %s does not resolve: check the region in the topic ARN (or AWS_ENDPOINT_URL), and the network's DNS", dns.Name)
	}
	return nil
}

// requestHost is the scheme and host a failed request went to, or "AWS".
func requestHost(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			return u.Scheme + "://" + u.Host
		}
	}
	return "AWS"
}

// isTopicMissing says SNS does not know the topic (in that account and
// region).
func isTopicMissing(err error) bool {
	switch apiCode(err) {
	case "NotFound", "NotFoundException":
		return true
	}
	return false
}
