package main

import (
	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/render"
)

// readCustomer reads a customer file as templates see the customer.
func readCustomer(path string, l *campaign.Lifecycle) (render.Customer, error) {
	c, err := customerFile(path, l)
	if err != nil {
		return render.Customer{}, err
	}
	// What templates see of a customer depends on the lifecycle alone (its
	// locale and time zone), so an engine without campaigns decides it.
	eng := lifecycle.New(&campaign.Set{Lifecycle: l})
	return render.NewData(eng, c, nil, "").Customer, nil
}

// customerFile reads a customer file (checked against l) as the customer the
// worker would send to.
func customerFile(path string, l *campaign.Lifecycle) (*lifecycle.Customer, error) {
	r, err := ingest.ReadCustomerFile(path, l)
	if err != nil {
		return nil, err
	}
	return &lifecycle.Customer{ID: r.ID, Email: r.Email, FirstName: r.FirstName, Name: r.Name,
		Locale: r.Locale, Timezone: r.Timezone, Stage: r.Stage, Attributes: r.Attributes}, nil
}
