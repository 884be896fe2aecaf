package web

// routes registers every page and endpoint; each area registers its own.
func (s *Server) routes() {
	s.apiRoutes()      // api.go: /api/events, /api/customers/...
	s.customerRoutes() // customers.go: GET /api/customers, /api/customers/{id}/emails
	s.peopleRoutes()   // people.go: /people, the customers' pages
	s.linkRoutes()     // links.go: /u/, /p/, /nps/, /c/ (unsubscribe, preferences, NPS, clicks)
	s.uiRoutes()       // ui.go: campaign preview pages
	s.reportRoutes()   // reports.go: /reports
	s.opsRoutes()      // ops.go: /healthz, /metrics, /monitor/
	if s.d.Webhooks != nil {
		// bounce/webhook: relay providers' bounce and complaint events, each
		// verified by its provider's signature or secret.
		s.mux.Handle("/webhooks/", s.d.Webhooks)
	}
}
