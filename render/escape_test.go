package render

import (
	"go/version"
	"runtime"
	"testing"
)

// TestEscapeCheckedWithThisGoVersion fails on a Go minor version that escape.go
// has not been checked against: compiled programs must escape byte for byte as
// html/template does, and a new release may change how it escapes.
func TestEscapeCheckedWithThisGoVersion(t *testing.T) {
	running := version.Lang(runtime.Version())
	if running == "" {
		t.Skipf("cannot tell the Go minor version of %q (a development build?)", runtime.Version())
	}
	if running != escapeCheckedWith {
		t.Fatalf("render/escape.go ports html/template's escapers from %[1]s, and this is %[2]s. Re-check it: "+
			"in the Go repository, git diff %[1]s.0 %[2]s.0 -- src/html/template; "+
			"port what changed in the escapers escape.go copies (content.go: stringify and the content types; "+
			"html.go: htmlEscaper, attrEscaper, rcdataEscaper, htmlNospaceEscaper, commentEscaper and their replacement tables; "+
			"url.go: urlFilter, isSafeURL, urlEscaper, urlNormalizer, processURLOnto, srcsetFilterAndEscaper) "+
			"and in the _html_template_* names of the escapers map; run go test -run='^$' -fuzz=FuzzCompiledMatchesTemplate ./render for a while; "+
			"then set escapeCheckedWith = %[2]q in render/escape.go",
			escapeCheckedWith, running)
	}
}
