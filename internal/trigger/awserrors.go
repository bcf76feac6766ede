package trigger

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
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
