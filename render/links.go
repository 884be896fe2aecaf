package render

import (
	"net/url"
	"strings"

	"github.com/retainmail/retain/campaign"
)

// stepLinks are the links st's emails get over the customer's: the step's own
// (links: in its front matter) and, when lifecycle.yaml asks for UTM
// parameters (utm:), the fixed links of lifecycle.yaml too, each http(s)
// URL with utm_source and utm_medium of lifecycle.yaml, utm_campaign the
// campaign's ID and utm_content the step's slug. They are computed once, at
// Compile, as Links values: an email only puts them over its Links. Nil when
// there are none.
func stepLinks(l *campaign.Lifecycle, camp *campaign.Campaign, st *campaign.Step) Links {
	var utm *campaign.UTM
	if l != nil {
		utm = l.UTM
	}
	out := Links{}
	if utm != nil {
		for name, u := range l.Links {
			out[name] = withUTM(u, utm, camp.ID, st.Slug)
		}
	}
	for name, u := range st.Links {
		out[name] = withUTM(u, utm, camp.ID, st.Slug)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// withUTM adds the UTM parameters to an http(s) URL that has none of its
// own; other URLs (mailto:) and URLs that set any utm_ parameter are left as
// they are. utm nil leaves every URL as it is.
func withUTM(raw string, utm *campaign.UTM, campaignID, slug string) string {
	if utm == nil || !(strings.HasPrefix(raw, "https://") || strings.HasPrefix(raw, "http://")) {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "utm_") {
			return raw // the marketer set them for this link
		}
	}
	extra := url.Values{"utm_source": {utm.Source}, "utm_medium": {utm.Medium}, "utm_campaign": {campaignID}, "utm_content": {slug}}.Encode()
	if u.RawQuery == "" {
		u.RawQuery = extra
	} else {
		u.RawQuery += "&" + extra
	}
	return u.String()
}
