package chtest

import (
	"context"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

func TestDatabaseLifecycle(t *testing.T) {
	dsn := DSN(t)
	if again := DSN(t); again != dsn {
		t.Errorf("second DSN = %q; want the shared server %q", again, dsn)
	}
	conn := Open(t, dsn)
	exists := func(name string) bool {
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.databases WHERE name = '"+name+"'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	var first, second string
	t.Run("Sub/Test Name", func(t *testing.T) {
		first, second = Database(t, dsn), Database(t, dsn)
		if first == second {
			t.Errorf("two Database calls returned %q twice", first)
		}
		for _, name := range []string{first, second} {
			if !exists(name) {
				t.Errorf("database %s does not exist", name)
			}
			if !strings.HasSuffix(name, "_testdatabaselifecycle_sub_test_name") {
				t.Errorf("database name %q does not name the test", name)
			}
		}
	})
	for _, name := range []string{first, second} {
		if exists(name) {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
}
