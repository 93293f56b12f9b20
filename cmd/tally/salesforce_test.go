package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tally-analytics/tally/rules/salesforce"
	"github.com/tally-analytics/tally/rules/salesforce/sftest"
	"github.com/tally-analytics/tally/store"
	"github.com/tally-analytics/tally/store/chserver"
	"github.com/tally-analytics/tally/store/chtest"
)

const (
	sfClientID, sfSecret = "3MVG9-crash-consumer-key", "crash-consumer-secret"
	sfExtField           = "Tally_Event_Id__c"
)

// salesforceYAML forwards every form_submitted completion to the org at
// url as a task.
func salesforceYAML(url string) string {
	return serveYAML + `  - name: form_submitted
    label: Form submitted
    properties:
      - {name: form_id, type: string}
destinations:
  - name: crm
    type: salesforce
    salesforce: {instance_url: ` + url + `, client_id: ` + sfClientID + `, client_secret: ` + sfSecret + `, external_id_field: ` + sfExtField + `}
rules:
  - name: form_tasks
    when: {event: form_submitted}
    forward: {to: crm, task: {subject: "{{label}}: {{form_id}}", type: Other, within_days: 365}}
`
}

// TestSalesforceTaskOnceAfterKillNine: Salesforce creates the tasks of an
// upsert whose answer never reaches tally, which is then killed with
// SIGKILL. After the restart the pending tasks are sent again under the
// same external ids: each task exists once, created once and updated by
// the retry, and the deliveries log says sent with the task's id.
func TestSalesforceTaskOnceAfterKillNine(t *testing.T) {
	chtest.DSN(t) // fails under CI=true when ClickHouse is not installed
	ch, err := chserver.Start(context.Background(), chserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Stop(context.Background()) })
	sf := sftest.Start(sftest.Config{ClientID: sfClientID, ClientSecret: sfSecret, APIVersion: salesforce.DefaultAPIVersion, ExternalIDField: sfExtField})
	t.Cleanup(sf.Close)
	var ids []string
	for i := range 5 {
		sf.AddContact(fmt.Sprintf("p%d@example.com", i), time.Now().Add(-time.Hour))
		ids = append(ids, fmt.Sprintf("sf-crash-%d", i))
	}
	sf.WithholdUpsertAnswers()

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tally.yaml")
	yaml := fmt.Sprintf("listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\ndata_dir: %q\nclickhouse: {dsn: %q, database: sfcrash}\n", filepath.Join(dir, "data"), ch.DSN()) +
		salesforceYAML(sf.URL())
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, cfgPath)
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"eventName":"form_submitted","email":"p%d@example.com","uuid":%q,"properties":{"form_id":"contact"}}`, i, id)
	}
	req, _ := http.NewRequest("POST", c.addr+"/events/v3/send/batch", strings.NewReader(`{"inputs":[`+b.String()+`]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("send = %v %v; want 204", resp, err)
	}
	resp.Body.Close()
	waitUntil(t, "Salesforce created the 5 tasks", 30*time.Second, func() bool { return len(sf.Tasks()) == 5 }, c.stderr.tail)
	c.kill(t) // the upsert's answer is still withheld
	sf.ClearFailures()

	c = startChild(t, cfgPath)
	waitUntil(t, "the pending tasks sent again", 30*time.Second, func() bool {
		for _, task := range sf.Tasks() {
			if task.Updates == 0 {
				return false
			}
		}
		return true
	}, c.stderr.tail)
	tasks := sf.Tasks()
	var got []string
	for ext, task := range tasks {
		got = append(got, ext)
		if task.Fields["Subject"] != "Form submitted: contact" || task.Fields["Type"] != "Other" || task.Fields["Status"] != "Completed" {
			t.Errorf("task %s = %v; want subject, type and status from the rule", ext, task.Fields)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, ids) || sf.Creates() != 5 {
		t.Errorf("tasks %q, %d created; want each of %q created exactly once", got, sf.Creates(), ids)
	}
	for _, r := range sf.Requests() {
		if r.Method == http.MethodPatch {
			t.Logf("%s %s → %d\n%s", r.Method, r.Path, r.Status, r.Body)
			break
		}
	}

	conn, err := store.Open(context.Background(), ch.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitUntil(t, "5 sent deliveries", 30*time.Second, func() bool {
		ds, err := store.ReadDeliveries(context.Background(), conn, "sfcrash", store.DeliveryQuery{Destination: "crm", Status: "sent"})
		if err != nil || len(ds) != 5 {
			return false
		}
		for _, d := range ds {
			if d.TraceID != tasks[d.EventID].ID || d.ForwardedName != "Task" || d.SourceEvent != "form_submitted" {
				t.Errorf("delivery %+v; want the task id %s as trace id", d, tasks[d.EventID].ID)
			}
		}
		return true
	}, c.stderr.tail)
	c.cmd.Process.Signal(syscall.SIGTERM)
	<-c.exited
}

// waitUntil polls ok until it holds or d passes, then fails with logs().
func waitUntil(t *testing.T, what string, d time.Duration, ok func() bool, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v\n%s", what, d, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
