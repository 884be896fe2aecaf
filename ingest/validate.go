package ingest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
)

// The limits every door (PUT /api/customers, POST /api/events, retain import,
// retain event) applies through Check and CheckTime, so that what one door
// accepts is what the worker can mail.
const (
	// MaxNameLen bounds first_name and name, in bytes: a name lands in the
	// subject line and the To: header, whose lines may not exceed 998 octets.
	MaxNameLen = 256
	// MaxEmailLen is RFC 5321's limit on a forward path (256 octets with the
	// angle brackets); the local part may have at most 64.
	MaxEmailLen = 254
	maxLocalLen = 64
	// MaxSkew is how far ahead of now an event's time may be, for clients whose
	// clocks run fast. The engine never moves a customer's clock backwards, so
	// one event from the future would fast-forward every time rule until then.
	MaxSkew = 15 * time.Minute
)

// CheckTime is the one rule for an event's time at every door: not before 1970,
// and not more than MaxSkew after now.
func CheckTime(at, now time.Time) error {
	switch {
	case at.Year() < 1970:
		return fmt.Errorf("at %s is before 1970: give the time the event happened", at.Format(time.RFC3339))
	case at.After(now.Add(MaxSkew)):
		return fmt.Errorf("at %s is in the future (now is %s): events are what already happened", at.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// CheckEmail reports whether s is an address retain can send to: an RFC 5322
// addr-spec as net/mail parses it, without a display name, comments, quoted
// local part or domain literal, of at most MaxEmailLen bytes, whose domain is a
// host name: labels of letters, digits and hyphens (of any script) that
// convert with IDNA (golang.org/x/net/idna, registration profile, after
// lower-casing) to an xn-- form of valid length, as a relay will convert it.
func CheckEmail(s string) error {
	bad := func(why string) error { return fmt.Errorf("email %q is not an email address%s", s, why) }
	if !utf8.ValidString(s) {
		return bad(": it is not valid UTF-8")
	}
	if len(s) > MaxEmailLen {
		return bad(fmt.Sprintf(": it is longer than %d bytes", MaxEmailLen))
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return bad("")
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if len(local) > maxLocalLen {
		return bad(fmt.Sprintf(": the part before @ is longer than %d bytes", maxLocalLen))
	}
	for _, label := range strings.Split(domain, ".") {
		for _, r := range label {
			if r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r) && !unicode.Is(unicode.Mc, r) {
				return bad(fmt.Sprintf(": %q is not a host name", domain))
			}
		}
	}
	ascii, err := idna.Registration.ToASCII(strings.ToLower(domain))
	if err != nil || len(ascii) > 253 {
		return bad(fmt.Sprintf(": %q is not a host name", domain))
	}
	for _, label := range strings.Split(ascii, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return bad(fmt.Sprintf(": %q is not a host name", domain))
		}
	}
	return nil
}

// checkText refuses text that cannot go into a header line: invalid UTF-8,
// control characters (CR, LF, NUL, tab, …) and Unicode line separators, or more
// than max bytes.
func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q is not valid UTF-8", field, s)
	}
	if len(s) > max {
		return fmt.Errorf("%s is %d bytes long; the most is %d", field, len(s), max)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }); i >= 0 {
		return fmt.Errorf("%s %q holds a control character (%U at byte %d): give it on one line, without control characters", field, s, []rune(s[i:])[0], i+1)
	}
	return nil
}

// checkLocale accepts a BCP 47 style tag: letters, digits, '-' and '_'.
func checkLocale(s string) error {
	if len(s) > 35 || strings.IndexFunc(s, func(r rune) bool {
		return !(r < utf8.RuneSelf && (r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)))
	}) >= 0 {
		return fmt.Errorf("locale %q is not a language tag such as nl or pt-BR", s)
	}
	return nil
}

// checkStrings refuses invalid UTF-8 anywhere in v (keys and string values,
// nested too): JSON would turn it into U+FFFD and templates would print that.
func checkStrings(where string, v any) error {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return fmt.Errorf("%s: %q is not valid UTF-8", where, x)
		}
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) {
				return fmt.Errorf("%s: key %q is not valid UTF-8", where, k)
			}
			if err := checkStrings(where+"."+k, e); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := checkStrings(fmt.Sprintf("%s[%d]", where, i), e); err != nil {
				return err
			}
		}
	}
	return nil
}

// MaxEventData is the most bytes, as JSON, that the fields of an event which
// campaigns declare (event_data:) may take: they are kept with each
// enrollment the event starts, so they are for IDs and small values (an
// order ID, a product name). The event's other data is not kept and not
// limited here.
const MaxEventData = 1024

// CheckEventData checks an event against the campaigns of set it triggers
// that declare event_data: each declared field it carries must have the
// declared type, and together they must fit in MaxEventData. field names the
// part at fault in the API's terms ("data.total", "data").
func CheckEventData(set *campaign.Set, ev lifecycle.Event) (field string, err error) {
	if set == nil || len(ev.Data) == 0 {
		return "", nil
	}
	kept := map[string]any{}
	for _, camp := range set.Campaigns {
		if camp.Trigger.Event != ev.Name {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(camp.EventData)) {
			v, ok := ev.Data[name]
			if !ok {
				continue
			}
			if _, err := camp.EventData[name].Coerce("data."+name, v); err != nil {
				return "data." + name, fmt.Errorf("%v (campaign %s declares it in event_data)", err, camp.ID)
			}
			kept[name] = v
		}
	}
	if len(kept) == 0 {
		return "", nil
	}
	b, err := json.Marshal(kept)
	if err != nil {
		return "data", fmt.Errorf("data cannot be encoded: %v", err)
	}
	if len(b) > MaxEventData {
		return "data", fmt.Errorf("the data fields campaigns keep with an enrollment (%s) are %d bytes; the most is %d: send IDs and small values (an order ID, a product name), not documents", strings.Join(slices.Sorted(maps.Keys(kept)), ", "), len(b), MaxEventData)
	}
	return "", nil
}
