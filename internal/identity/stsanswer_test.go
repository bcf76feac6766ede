package identity

import (
	"errors"
	"strings"
	"testing"
)

// Issue 24: the STS answer is read strictly. Each case is one change to a
// good answer (gciXML); the old xml.Unmarshal parser took the last of two
// <Arn>s and an <Arn> in any namespace: it accepted 14 of these 19 (all but
// the second Account, the missing Arn and result, the second document and
// the other root).
func TestParseAnswerRefuses(t *testing.T) {
	const arnA, arnB = "arn:aws:iam::123456789012:user/a", "arn:aws:iam::123456789012:user/admin"
	good := gciXML(arnA)
	if arn, _, _, err := parseAnswer([]byte(good)); err != nil || arn != arnA {
		t.Fatalf("good answer: %q, %v", arn, err)
	}
	edit := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("%q not in the answer", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	result := "<GetCallerIdentityResult>\n    <Arn>" + arnA + "</Arn>\n    <UserId>AIDAEXAMPLEUSERID</UserId>\n    <Account>123456789012</Account>\n  </GetCallerIdentityResult>"
	cases := map[string]string{
		"second Arn":                       edit("</Arn>", "</Arn><Arn>"+arnB+"</Arn>"),
		"second Account":                   edit("</Account>", "</Account><Account>999999999999</Account>"),
		"second UserId":                    edit("</UserId>", "</UserId><UserId>AIDAOTHER</UserId>"),
		"second result":                    edit("<ResponseMetadata>", strings.Replace(result, arnA, arnB, 1)+"<ResponseMetadata>"),
		"second ResponseMetadata":          edit("</GetCallerIdentityResponse>", "<ResponseMetadata/></GetCallerIdentityResponse>"),
		"Arn in a foreign namespace":       edit("<Arn>"+arnA+"</Arn>", `<x:Arn xmlns:x="urn:evil">`+arnB+`</x:Arn>`),
		"Arn in no namespace":              edit("<Arn>"+arnA+"</Arn>", `<Arn xmlns="">`+arnA+`</Arn>`),
		"foreign Arn beside the real one":  edit("</Arn>", `</Arn><Arn xmlns="urn:evil">`+arnB+`</Arn>`),
		"result in a foreign namespace":    edit("<GetCallerIdentityResult>", `<GetCallerIdentityResult xmlns="urn:evil">`),
		"foreign element in the metadata":  edit("<RequestId>", `<e:Extra xmlns:e="urn:evil"/><RequestId>`),
		"attribute":                        edit("<Arn>", `<Arn kind="x">`),
		"markup in Arn":                    edit("<Arn>"+arnA, "<Arn>"+arnA+"<b/>"),
		"text beside the result":           edit("<ResponseMetadata>", "hello<ResponseMetadata>"),
		"no Arn":                           edit("<Arn>"+arnA+"</Arn>", ""),
		"no result":                        edit(result, ""),
		"doctype":                          `<!DOCTYPE x>` + good,
		"processing instruction inside":    edit("<Arn>", "<?php x?><Arn>"),
		"second document (old parser too)": good + good,
		"other root (old parser too)":      strings.ReplaceAll(good, "GetCallerIdentityResponse", "AssumeRoleResponse"),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			arn, _, _, err := parseAnswer([]byte(body))
			var ie *Error
			if !errors.As(err, &ie) || ie.Kind != KindRefused {
				t.Fatalf("accepted (ARN %q), err %v:\n%s", arn, err, body)
			}
		})
	}
	t.Run("accepted", func(t *testing.T) {
		for name, body := range map[string]string{
			"XML declaration and comments": `<?xml version="1.0" encoding="UTF-8"?>` + "\n<!-- c -->" + edit("<Arn>", "<!-- c --><Arn>") + "<!-- end -->\n",
			"prefixed STS namespace":       edit("<Arn>"+arnA+"</Arn>", `<s:Arn xmlns:s="`+stsNamespace+`">`+arnA+`</s:Arn>`),
			"unknown STS element skipped":  edit("</Account>", "</Account><Future><Arn>"+arnB+"</Arn></Future>"),
		} {
			if arn, _, _, err := parseAnswer([]byte(body)); err != nil || arn != arnA {
				t.Errorf("%s: %q, %v", name, arn, err)
			}
		}
	})
}

// FuzzParseAnswer: the STS answer parser never panics; what it accepts has
// a GetCallerIdentityResponse root in the STS namespace.
func FuzzParseAnswer(f *testing.F) {
	good := gciXML("arn:aws:iam::123456789012:user/a")
	f.Add([]byte(good))
	f.Add([]byte(strings.Replace(good, "</Arn>", "</Arn><Arn>arn:aws:iam::123456789012:user/b</Arn>", 1)))
	f.Add([]byte(strings.Replace(good, "<Arn>", `<Arn xmlns="urn:x">`, 1)))
	f.Add([]byte(`<?xml version="1.0"?>` + good))
	f.Add([]byte(`<GetCallerIdentityResponse xmlns="` + stsNamespace + `"/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _, err := parseAnswer(data)
		if err != nil {
			var ie *Error
			if !errors.As(err, &ie) || ie.Kind != KindRefused {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		s := string(data)
		if !strings.Contains(s, "GetCallerIdentityResponse") || !strings.Contains(s, stsNamespace) {
			t.Fatalf("accepted %q", data)
		}
	})
}
