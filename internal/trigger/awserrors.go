package trigger

import (
	"errors"
	"strings"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
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

// isNoCredentials recognises the SDK's "found no credentials anywhere" error.
func isNoCredentials(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "failed to refresh cached credentials") &&
		(strings.Contains(s, "no EC2 IMDS role found") || strings.Contains(s, "failed to retrieve credentials") ||
			strings.Contains(s, "not found") || strings.Contains(s, "no such host") || strings.Contains(s, "connect:"))
}

// apiMessage is the AWS error message, or the error text.
func apiMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorMessage() != "" {
		return ae.ErrorMessage()
	}
	return err.Error()
}
