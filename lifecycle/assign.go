package lifecycle

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/retainmail/retain/campaign"
)

// buckets is how finely assignments split customers: a holdout or a split is
// a share of 10,000 buckets (basis points).
const buckets = 10_000

// bucket places a customer in one of buckets by a hash of kind, the thing
// assigned (a campaign or step identity) and the customer ID: the same
// customer always lands in the same bucket for one thing, on every process
// and after every restart, and the buckets of different things are
// independent (a customer in a campaign's holdout is as likely as anyone to
// get a step's variant b).
func bucket(kind, thing, customer string) int {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(thing))
	h.Write([]byte{0})
	h.Write([]byte(customer))
	var sum [sha256.Size]byte
	return int(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) % buckets)
}

// InHoldout reports whether the customer belongs in camp's holdout (control)
// group: deterministic by customer and campaign, a share camp.Holdout (basis
// points) of all customers.
func InHoldout(customerID string, camp *campaign.Campaign) bool {
	return camp.Holdout > 0 && bucket("holdout", camp.ID, customerID) < camp.Holdout
}

// AssignVariant returns the A/B variant of step st for the customer:
// deterministic by customer and step identity. The variants take their
// split: in name order (b the first split percent of the buckets, c the
// next), the step's own content (campaign.VariantA) the rest. A step without
// variants gives "".
func AssignVariant(customerID string, st *campaign.Step) string {
	if len(st.AB) == 0 {
		return ""
	}
	b, edge := bucket("variant", st.ID, customerID), 0
	for _, v := range st.AB {
		edge += v.Split * buckets / 100
		if b < edge {
			return v.Name
		}
	}
	return campaign.VariantA
}

// variant returns the variant of step st the customer gets in enr: the one
// recorded when it was first decided, while the step still has it, else a
// new assignment, which it records.
func variant(c *Customer, enr *Enrollment, st *campaign.Step) string {
	if len(st.AB) == 0 {
		// The step lost its variants: what was recorded is not what is sent.
		delete(enr.AB, st.Slug)
		return ""
	}
	if v, ok := enr.AB[st.Slug]; ok && (v == campaign.VariantA || st.ABVariant(v) != nil) {
		return v
	}
	v := AssignVariant(c.ID, st)
	if enr.AB == nil {
		enr.AB = map[string]string{}
	}
	enr.AB[st.Slug] = v
	return v
}
