package identity

import "fmt"

// Kind classifies why a proof was not accepted.
type Kind int

// The kinds of verification failure. Only KindUnavailable is worth a retry.
const (
	// KindMalformed: the proof does not decode, or is not the one fixed
	// GetCallerIdentity request this package produces (method, body,
	// headers, Authorization layout, credential scope).
	KindMalformed Kind = iota + 1
	// KindBinding: a well-formed proof bound to another audience or another
	// request digest (a proof lifted from another request or broker).
	KindBinding
	// KindStale: the signing time is outside the accepted window.
	KindStale
	// KindHostNotAllowed: the proof names an endpoint outside the allowlist.
	KindHostNotAllowed
	// KindRefused: STS answered with a 4xx (bad signature, expired or
	// invalid token, unknown key) or an answer that is not a valid identity.
	KindRefused
	// KindUnavailable: STS could not be reached, timed out, throttled or
	// answered 5xx. Retryable.
	KindUnavailable
)

func (k Kind) String() string {
	switch k {
	case KindMalformed:
		return "malformed proof"
	case KindBinding:
		return "proof bound to another request"
	case KindStale:
		return "stale proof"
	case KindHostNotAllowed:
		return "STS endpoint not allowed"
	case KindRefused:
		return "STS refused the proof"
	case KindUnavailable:
		return "STS unavailable"
	}
	return fmt.Sprintf("identity error kind %d", int(k))
}

// Error is the error every verification failure returns. Match it with
// errors.Is against the sentinels below, or errors.As and Kind.
type Error struct {
	Kind Kind
	// Detail is a short, log-safe explanation; it never echoes a whole
	// header or the STS response body.
	Detail string
	Err    error
}

// Sentinels for errors.Is; they compare by Kind only.
var (
	ErrMalformed      = &Error{Kind: KindMalformed}
	ErrBinding        = &Error{Kind: KindBinding}
	ErrStale          = &Error{Kind: KindStale}
	ErrHostNotAllowed = &Error{Kind: KindHostNotAllowed}
	ErrRefused        = &Error{Kind: KindRefused}
	ErrUnavailable    = &Error{Kind: KindUnavailable}
)

func (e *Error) Error() string {
	s := "identity: " + e.Kind.String()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same Kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind
}

// Retryable reports whether the same proof may succeed later (STS was not
// reached or was overloaded). A proof may still have gone stale by then.
func (e *Error) Retryable() bool { return e.Kind == KindUnavailable }

func fail(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...)}
}
