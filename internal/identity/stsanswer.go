package identity

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// The answer to GetCallerIdentity is read strictly, token by token rather
// than with xml.Unmarshal (which takes the last of two <Arn>s and matches
// <Arn> in any namespace):
//
//	<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
//	  <GetCallerIdentityResult>
//	    <Arn>…</Arn> <UserId>…</UserId> <Account>…</Account>
//	  </GetCallerIdentityResult>
//	  <ResponseMetadata><RequestId>…</RequestId></ResponseMetadata>
//	</GetCallerIdentityResponse>
//
// Refused: an element in another namespace (or none) anywhere; an attribute
// other than a namespace declaration; GetCallerIdentityResult,
// ResponseMetadata, Arn, UserId or Account twice (or the result's three
// fields not exactly once); markup inside Arn, UserId or Account; text
// beside elements; a DOCTYPE or processing instruction after the XML
// declaration; anything but whitespace and comments after the document;
// nesting deeper than maxAnswerDepth. Other elements in the STS namespace
// are skipped, so that a field AWS adds to the answer does not stop every
// verification.

const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

// maxAnswerDepth bounds the nesting of the answer (STS's is 3 deep).
const maxAnswerDepth = 8

// xmlElem is an element of the answer: its children and the text directly
// inside it.
type xmlElem struct {
	name     xml.Name
	children []*xmlElem
	text     strings.Builder
}

func refusedAnswer(format string, args ...any) error {
	return fail(KindRefused, "STS answer: "+format, args...)
}

// readAnswer reads the document into a tree, refusing what is not an
// element in the STS namespace.
func readAnswer(body []byte) (*xmlElem, error) {
	dec := xml.NewDecoder(strings.NewReader(string(body)))
	dec.Strict = true
	var root *xmlElem
	var stack []*xmlElem
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &Error{Kind: KindRefused, Detail: "STS answer is not XML", Err: err}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, refusedAnswer("trailing data after the document")
			}
			if t.Name.Space != stsNamespace {
				return nil, refusedAnswer("element <%s> in namespace %q, not STS's", clip(t.Name.Local), clip(t.Name.Space))
			}
			for _, a := range t.Attr {
				if a.Name.Space != "xmlns" && (a.Name.Space != "" || a.Name.Local != "xmlns") {
					return nil, refusedAnswer("attribute %q on <%s>", clip(a.Name.Local), clip(t.Name.Local))
				}
			}
			if len(stack) == maxAnswerDepth {
				return nil, refusedAnswer("nested deeper than %d", maxAnswerDepth)
			}
			e := &xmlElem{name: t.Name}
			if len(stack) == 0 {
				root = e
			} else {
				top := stack[len(stack)-1]
				top.children = append(top.children, e)
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if strings.TrimSpace(string(t)) != "" {
					return nil, refusedAnswer("text outside the document")
				}
				continue
			}
			stack[len(stack)-1].text.Write(t)
		case xml.Comment:
		case xml.ProcInst:
			if root != nil || t.Target != "xml" {
				return nil, refusedAnswer("processing instruction <?%s?>", clip(t.Target))
			}
		default: // xml.Directive: a DOCTYPE
			return nil, refusedAnswer("unexpected %T", tok)
		}
	}
	if root == nil {
		return nil, refusedAnswer("no document")
	}
	return root, nil
}

// only returns e's single child named local: an error when there are two,
// nil when there is none.
func (e *xmlElem) only(local string) (*xmlElem, error) {
	var found *xmlElem
	for _, c := range e.children {
		if c.name.Local == local {
			if found != nil {
				return nil, refusedAnswer("<%s> twice in <%s>", local, e.name.Local)
			}
			found = c
		}
	}
	return found, nil
}

// container checks that e holds elements and whitespace only.
func (e *xmlElem) container() error {
	if strings.TrimSpace(e.text.String()) != "" {
		return refusedAnswer("text in <%s>", e.name.Local)
	}
	return nil
}

// field returns the text of e's single child named local, which must exist
// and hold text only.
func (e *xmlElem) field(local string) (string, error) {
	c, err := e.only(local)
	if err != nil {
		return "", err
	}
	if c == nil {
		return "", refusedAnswer("no <%s> in <%s>", local, e.name.Local)
	}
	if len(c.children) > 0 {
		return "", refusedAnswer("markup in <%s>", local)
	}
	return c.text.String(), nil
}

// parseAnswer reads a GetCallerIdentity answer: the caller's ARN, account
// and user id.
func parseAnswer(body []byte) (arn, account, userID string, err error) {
	root, err := readAnswer(body)
	if err != nil {
		return "", "", "", err
	}
	if root.name.Local != "GetCallerIdentityResponse" {
		return "", "", "", refusedAnswer("<%s>, not a GetCallerIdentityResponse", clip(root.name.Local))
	}
	if err := root.container(); err != nil {
		return "", "", "", err
	}
	if _, err := root.only("ResponseMetadata"); err != nil {
		return "", "", "", err
	}
	res, err := root.only("GetCallerIdentityResult")
	if err != nil {
		return "", "", "", err
	}
	if res == nil {
		return "", "", "", refusedAnswer("no <GetCallerIdentityResult>")
	}
	if err := res.container(); err != nil {
		return "", "", "", err
	}
	if arn, err = res.field("Arn"); err != nil {
		return "", "", "", err
	}
	if account, err = res.field("Account"); err != nil {
		return "", "", "", err
	}
	if userID, err = res.field("UserId"); err != nil {
		return "", "", "", err
	}
	return arn, account, userID, nil
}

// parseResponse turns STS's answer into the verified principal.
func (v *Verifier) parseResponse(body []byte) (Principal, error) {
	arn, account, userID, err := parseAnswer(body)
	if err != nil {
		return Principal{}, err
	}
	p, err := parsePrincipal(arn, account, userID)
	if err != nil {
		return Principal{}, &Error{Kind: KindRefused, Detail: "STS answer", Err: err}
	}
	if p.Partition != v.partition {
		return Principal{}, fail(KindRefused, "principal in partition %q, want %q", p.Partition, v.partition)
	}
	return p, nil
}
