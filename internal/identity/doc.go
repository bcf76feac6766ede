// Package identity proves to the dispatcher which AWS principal sent a
// broker request, the way HashiCorp Vault's AWS IAM auth method and
// aws-iam-authenticator (EKS) do: the caller signs, but does not send, an
// sts:GetCallerIdentity request; the verifier sends that signed request to
// STS itself and STS answers with the signer's ARN.
//
// # Mechanism
//
// Trigger side, Sign: build POST https://sts.<region>.<partition suffix>/
// with the fixed body "Action=GetCallerIdentity&Version=2011-06-15", the
// fixed Content-Type, and two bound headers,
//
//	X-Deploy-Broker-Audience:       <broker topic ARN>
//	X-Deploy-Broker-Request-Sha256: <hex SHA-256 of the canonical request>
//
// and SigV4-sign it, so that host, x-amz-date, content-type, both bound
// headers (and x-amz-security-token, content-length) are in SignedHeaders.
// The result is a Proof (method, URL, header list, body) that travels in
// the request message. The digest comes from Digest, over fields the caller
// chooses (protocol version, kind, run id, job, sorted parameters,
// requested_at, expires_at, audience…): a length-prefixed encoding with a
// domain string, so trigger and dispatcher compute it alike and no two
// field lists collide.
//
// Dispatcher side, Verifier.Verify: decode strictly (DecodeProof: size
// limit, no unknown or duplicate fields), then check offline, in order:
// method POST; URL exactly one of the allowlisted URLs (no URL parsing of
// the message at all, so no userinfo/port/path/query/case tricks); body
// exactly the fixed body; only allowlisted header names, each once, in
// canonical spelling, printable ASCII without leading/trailing/double
// spaces; Authorization exactly "AWS4-HMAC-SHA256 Credential=…/DATE/
// REGION/sts/aws4_request, SignedHeaders=…, Signature=<64 hex>" with
// sorted unique signed headers that include the required ones, every sent
// header signed and every signed header sent; credential scope region =
// the allowlist entry's region; the bound headers equal the expected
// audience and the digest the dispatcher recomputed from the message;
// X-Amz-Date no older than 15 minutes (STS's own limit), no more than 5
// minutes ahead, not after the request's expires_at, not long before its
// requested_at. Only then is the request sent, to the allowlisted URL (not
// the message's string), with an http.Client that follows no redirect, a
// timeout, and a 64 KiB answer cap; only HTTP 200 with a
// GetCallerIdentityResponse in the STS namespace is accepted, read token by
// token (stsanswer.go: every element in the STS namespace, the result and
// its Arn, UserId and Account exactly once, no attributes, no markup in a
// field, nothing after the document), and the ARN
// must be an IAM user or an assumed role in the verifier's partition with
// the reported account.
//
// Allowlist: https://sts.<region>.amazonaws.com/ (aws, aws-us-gov),
// https://sts.<region>.amazonaws.com.cn/ (aws-cn), optionally the global
// https://sts.amazonaws.com/ (aws only, scope us-east-1). An explicit
// VerifierConfig.Endpoint replaces the allowlist with that one URL (http
// only for a loopback IP literal): local mode, tests, a VPC endpoint. It is
// configuration, never taken from a message. FIPS endpoints are not
// supported.
//
// # What a verified proof proves
//
// That whoever built the message held, within the last 15 minutes, the
// credentials of Principal, and signed this audience and this request
// digest. It does not prove MFA (GetCallerIdentity has no MFA context:
// require MFA in the role's trust policy if needed); session names are
// chosen by the caller unless the role's trust policy pins
// sts:RoleSessionName; a role deleted and re-created under the same name
// has the same ARN (Principal.UserID differs). Assumed-role ARNs carry no
// role path, so MatchPrincipal compares roles by partition, account and
// name (unique in an account regardless of path) and ignores a path in the
// catalogue's role ARN; users are compared by full ARN (STS reports paths).
// Nothing ever matches by role or user name alone.
//
// The proof carries no secret key, but it does carry the session token of
// temporary credentials, as Vault's login does: a token is useless without
// the secret key. Anyone who sees the message can replay the proof to STS
// for at most 15 minutes, and all it does there is answer GetCallerIdentity
// (i.e. reveal the caller's ARN, which the message is about anyway); it is
// bound to this audience and this digest, so it vouches for nothing but
// this exact request. Replay of the whole message is not prevented here:
// the dispatcher's run claim and expires_at handle that.
//
// # Threats
//
//	threat                                     handled by
//	forged identity                            STS checks the SigV4 signature
//	proof lifted onto another request/broker   signed digest and audience headers
//	bound header edited after signing          signature fails at STS (tested on moto with auth)
//	old proof replayed                         15 min window, expires_at, run claim
//	SSRF / sending to attacker host            exact URL allowlist, request built from it
//	redirect to elsewhere                      no redirects followed; 3xx refused
//	GET/query form, other action or body       POST only, exact body, no query
//	header injection, duplicates by case       header allowlist, canonical names, value checks
//	unsigned extra header                      every sent header must be signed
//	partition/region confusion                 scope region, host per partition, ARN partition
//	oversized proof or answer                  16 KiB proof, 64 KiB answer, timeout
//	ARN matched by name only                   patterns need partition+account; no wildcards
//
// Errors are *Error with a Kind (malformed, binding, stale, host not
// allowed, refused, unavailable); only KindUnavailable is retryable.
package identity
