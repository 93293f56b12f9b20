package store

import (
	"testing"

	"github.com/tally-analytics/tally/store/chtest"
)

func TestMain(m *testing.M) { chtest.Main(m) }
