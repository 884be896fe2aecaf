package main

import (
	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/render"
)

// readCustomer reads a customer file as templates see the customer.
func readCustomer(path string, l *campaign.Lifecycle) (render.Customer, error) {
	r, err := ingest.ReadCustomerFile(path, l)
	if err != nil {
		return render.Customer{}, err
	}
	c := render.Customer{ID: r.ID, Email: r.Email, FirstName: r.FirstName, Name: r.Name,
		Locale: r.Locale, Timezone: r.Timezone, Stage: r.Stage, Attributes: r.Attributes}
	if c.Locale == "" {
		c.Locale = l.Locale
	}
	if c.Timezone == "" {
		c.Timezone = l.Timezone.String()
	}
	if c.Attributes == nil {
		c.Attributes = render.Attributes{}
	}
	return c, nil
}
