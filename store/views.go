package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// ViewName is the typed view of an event: event_<name>.
func ViewName(eventName string) string { return "event_" + eventName }

// commonColumns are the events columns every typed view shows first: all of
// them but the raw property arrays, which the view turns into typed columns.
func commonColumns() []string {
	return slices.DeleteFunc(slices.Clone(eventColumns), func(c string) bool { return c == "prop_keys" || c == "prop_values" })
}

// PropertyColumns returns the view column names of a definition's
// properties, in definition order. A property keeps its own name unless an
// events column has it (a property called url or site): then it is
// prop_<name>, with more prop_ prefixes if that is taken too.
func PropertyColumns(def ingest.Definition) []string {
	reserved := map[string]bool{}
	for _, c := range eventColumns {
		reserved[c] = true
	}
	used := maps.Clone(reserved)
	for _, p := range def.Properties {
		used[p.Name] = true
	}
	out := make([]string, len(def.Properties))
	for i, p := range def.Properties {
		if !reserved[p.Name] {
			out[i] = p.Name
			continue
		}
		name := "prop_" + p.Name
		for used[name] {
			name = "prop_" + name
		}
		used[name] = true
		out[i] = name
	}
	return out
}

// propertyExpr is the typed value of property p read from the raw arrays.
// Values are stored normalised (see ingest.Property.Normalize), and a
// missing property reads as ” (arrays answer the default for index 0), so
// every typed column is NULL (or []) when the property is absent. Each
// function was checked on ClickHouse 18.16: it has the *OrNull conversions
// and splitByChar, but if() there refuses a Nullable condition, hence
// ifNull around the range check.
func propertyExpr(p ingest.Property) string {
	raw := "prop_values[indexOf(prop_keys, " + quoteString(p.Name) + ")]"
	switch p.Type {
	case ingest.TypeNumber:
		return "toFloat64OrNull(" + raw + ")"
	case ingest.TypeDatetime:
		// Epoch milliseconds; outside what DateTime holds (1970 to 2106) is
		// NULL rather than a wrapped-around date.
		ms := "toInt64OrNull(" + raw + ")"
		return "if(ifNull(" + ms + " >= 0 AND " + ms + " < 4294967296000, 0), toDateTime(intDiv(assumeNotNull(" + ms + "), 1000), 'UTC'), NULL)"
	case ingest.TypeDate:
		return "toDateOrNull(" + raw + ")"
	case ingest.TypeBool:
		return "CAST(multiIf(" + raw + " = 'true', 1, " + raw + " = 'false', 0, NULL) AS Nullable(UInt8))"
	case ingest.TypeEnumeration:
		return "if(" + raw + " = '', emptyArrayString(), splitByChar(';', " + raw + "))"
	default: // string, and any type a newer config knows and this code not yet
		return raw
	}
}

// ViewDDL returns the CREATE VIEW statement of def's typed view.
func ViewDDL(database string, def ingest.Definition) string {
	db := quoteIdent(database)
	var b strings.Builder
	b.WriteString("CREATE VIEW " + db + "." + quoteIdent(ViewName(def.Name)) + " AS\nSELECT\n")
	for _, c := range commonColumns() {
		b.WriteString("    " + c + ",\n")
	}
	names := PropertyColumns(def)
	for i, p := range def.Properties {
		b.WriteString("    " + propertyExpr(p) + " AS " + quoteIdent(names[i]) + ",\n")
	}
	s := strings.TrimSuffix(b.String(), ",\n")
	return s + "\nFROM " + db + ".events\nWHERE event_name = " + quoteString(def.Name)
}

// SyncViews makes the typed views match defs: it creates the view of each
// definition (and of the built-in page_view), recreates a view whose
// definition changed, and drops the views tally created for events no
// longer defined. Views tally did not create are never dropped or replaced;
// a name clash with one is reported. The typed_views table remembers what
// tally created.
func SyncViews(ctx context.Context, conn Conn, database string, defs []ingest.Definition) error {
	return SyncViewsOn(ctx, conn, database, "", defs)
}

// SyncViewsOn is SyncViews for a cluster (see cluster.go); an empty cluster
// is one server. A view that changes is replaced without a moment in which
// it is missing: the new one is made under a temporary name and swapped in
// with one RENAME.
func SyncViewsOn(ctx context.Context, conn Conn, database, cluster string, defs []ingest.Definition) error {
	if err := CheckDatabaseName(database); err != nil {
		return err
	}
	db := quoteIdent(database)
	var errs []error
	want := map[string]viewState{}
	for _, d := range defs {
		// Names go into SQL unescaped; the config check already refuses
		// others, this keeps an unchecked caller from building bad SQL.
		if err := checkNames(d); err != nil {
			errs = append(errs, err)
			continue
		}
		want[ViewName(d.Name)] = viewState{event: d.Name, ddl: ViewDDL(database, d)}
	}
	if _, ok := want[ViewName(ingest.PageViewEvent)]; !ok {
		pv := ingest.Definition{Name: ingest.PageViewEvent}
		want[ViewName(pv.Name)] = viewState{event: pv.Name, ddl: ViewDDL(database, pv)}
	}
	tracked, err := trackedViews(ctx, conn, db)
	if err != nil {
		return fmt.Errorf("sync views in %s: %w", database, err)
	}
	existing, err := tableEngines(ctx, conn, database)
	if err != nil {
		return fmt.Errorf("sync views in %s: %w", database, err)
	}

	var changes []viewState
	for _, name := range slices.Sorted(maps.Keys(want)) {
		w := want[name]
		t, ours := tracked[name]
		engine, exists := existing[name]
		switch {
		case ours && t.ddl == w.ddl && exists:
			continue // up to date
		case exists && !ours:
			errs = append(errs, fmt.Errorf("%s.%s exists (%s) and was not created by tally; rename or drop it to get the typed view of %s", database, name, engine, w.event))
			continue
		}
		if err := replaceView(ctx, conn, db, cluster, name, w.ddl, exists); err != nil {
			errs = append(errs, err)
			continue
		}
		w.name = name
		changes = append(changes, w)
	}
	for _, name := range slices.Sorted(maps.Keys(tracked)) {
		if _, keep := want[name]; keep {
			continue
		}
		t := tracked[name]
		if engine, exists := existing[name]; exists {
			if engine != "View" {
				errs = append(errs, fmt.Errorf("%s.%s is a %s, not the view tally made; leaving it", database, name, engine))
				continue
			}
			if err := execAll(ctx, conn, layout("DROP TABLE IF EXISTS "+db+"."+quoteIdent(name), cluster)); err != nil {
				errs = append(errs, fmt.Errorf("drop view %s: %w", name, err))
				continue
			}
		}
		t.name, t.dropped = name, true
		changes = append(changes, t)
	}
	if err := recordViews(ctx, conn, db, changes); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sync views in %s: %w", database, err)
	}
	return nil
}

// replaceView creates view name from ddl, or, when it exists, creates the
// new one as name__next and swaps the two with one RENAME (atomic in
// ClickHouse), so readers never find the view missing; the old one is
// dropped afterwards.
func replaceView(ctx context.Context, conn Conn, db, cluster, name, ddl string, exists bool) error {
	if !exists {
		if err := execAll(ctx, conn, layout(ddl, cluster)); err != nil {
			return fmt.Errorf("create view %s: %w", name, err)
		}
		return nil
	}
	next, old := quoteIdent(name+"__next"), quoteIdent(name+"__old")
	cur := quoteIdent(name)
	stmts := [][]string{
		layout("DROP TABLE IF EXISTS "+db+"."+next, cluster),
		layout("DROP TABLE IF EXISTS "+db+"."+old, cluster),
		layout(strings.Replace(ddl, "."+cur+" AS", "."+next+" AS", 1), cluster),
		layout("RENAME TABLE "+db+"."+cur+" TO "+db+"."+old+", "+db+"."+next+" TO "+db+"."+cur, cluster),
		layout("DROP TABLE IF EXISTS "+db+"."+old, cluster),
	}
	for _, s := range stmts {
		if err := execAll(ctx, conn, s); err != nil {
			return fmt.Errorf("replace view %s: %w", name, err)
		}
	}
	return nil
}

func execAll(ctx context.Context, conn Conn, stmts []string) error {
	for _, s := range stmts {
		if err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", firstLine(s), err)
		}
	}
	return nil
}

var internalName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func checkNames(d ingest.Definition) error {
	if !internalName.MatchString(d.Name) {
		return fmt.Errorf("event name %q is not an internal name (a-z, 0-9, _); no view made", d.Name)
	}
	for _, p := range d.Properties {
		if !internalName.MatchString(p.Name) {
			return fmt.Errorf("event %s: property name %q is not an internal name (a-z, 0-9, _); no view made", d.Name, p.Name)
		}
	}
	return nil
}

type viewState struct {
	name, event, ddl string
	dropped          bool
}

// trackedViews returns the views tally created and has not dropped.
func trackedViews(ctx context.Context, conn Conn, db string) (map[string]viewState, error) {
	rows, err := conn.Query(ctx, "SELECT name, event_name, ddl FROM "+db+".typed_views FINAL WHERE dropped = 0")
	if err != nil {
		return nil, fmt.Errorf("read typed_views: %w", err)
	}
	defer rows.Close()
	out := map[string]viewState{}
	for rows.Next() {
		var v viewState
		if err := rows.Scan(&v.name, &v.event, &v.ddl); err != nil {
			return nil, fmt.Errorf("read typed_views: %w", err)
		}
		out[v.name] = v
	}
	return out, rows.Err()
}

func tableEngines(ctx context.Context, conn Conn, database string) (map[string]string, error) {
	rows, err := conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = "+quoteString(database))
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		out[name] = engine
	}
	return out, rows.Err()
}

func recordViews(ctx context.Context, conn Conn, db string, vs []viewState) error {
	if len(vs) == 0 {
		return nil
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".typed_views (name, event_name, ddl, dropped, version)")
	if err != nil {
		return fmt.Errorf("record views: %w", err)
	}
	defer b.Close()
	// Nanoseconds order the states of one name; the loop adds i so two
	// changes in one call never tie.
	now := uint64(time.Now().UnixNano())
	for i, v := range vs {
		dropped := uint8(0)
		if v.dropped {
			dropped = 1
		}
		if err := b.Append(v.name, v.event, v.ddl, dropped, now+uint64(i)); err != nil {
			return fmt.Errorf("record views: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record views: %w", err)
	}
	return nil
}
