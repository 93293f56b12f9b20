// Package enrich derives what a completion's request implies: browser, OS and
// device from the user agent, place from the IP, and attribution from the
// page URL and referrer.
package enrich
