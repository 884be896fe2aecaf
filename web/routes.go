package web

// routes registers every page and endpoint; each area registers its own.
func (s *Server) routes() {
	s.apiRoutes()    // api.go: /api/events, /api/customers/...
	s.linkRoutes()   // links.go: /u/, /p/, /nps/, /c/ (unsubscribe, preferences, NPS, clicks)
	s.uiRoutes()     // ui.go: campaign preview pages
	s.reportRoutes() // reports.go: /reports
	s.opsRoutes()    // ops.go: /healthz, /metrics, /monitor/
}
