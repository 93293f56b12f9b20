package capi

// Lookup tables for normalisation. They are functions over switch
// statements rather than package-level maps so nothing at package level
// is mutable.

// iso3166Alpha2 holds every officially assigned ISO 3166-1 alpha-2 code,
// space-separated and padded so " xx " finds a whole code.
const iso3166Alpha2 = " ad ae af ag ai al am ao aq ar as at au aw ax az" +
	" ba bb bd be bf bg bh bi bj bl bm bn bo bq br bs bt bv bw by bz" +
	" ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz" +
	" de dj dk dm do dz ec ee eg eh er es et fi fj fk fm fo fr" +
	" ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy" +
	" hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp" +
	" ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly" +
	" ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz" +
	" na nc ne nf ng ni nl no np nr nu nz om" +
	" pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw" +
	" sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv sx sy sz" +
	" tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug um us uy uz" +
	" va vc ve vg vi vn vu wf ws ye yt za zm zw "

// callingCode is a country's international dialling code and the trunk
// prefix written before national numbers ("" where none is dropped, as in
// Italy, whose numbers keep their leading 0 internationally).
type callingCode struct{ code, trunk string }

// lookupCallingCode knows the countries tally's users are most likely to
// serve. An unknown country leaves national numbers without a calling
// code, which is what Meta's SDK does for every number.
func lookupCallingCode(country string) (callingCode, bool) {
	switch country {
	case "us", "ca", "pr", "vi", "gu", "as", "mp", "ag", "ai", "bb", "bm", "bs", "dm", "do",
		"gd", "jm", "kn", "ky", "lc", "ms", "sx", "tc", "tt", "vc", "vg":
		return callingCode{"1", ""}, true
	case "gb", "gg", "je", "im":
		return callingCode{"44", "0"}, true
	case "ie":
		return callingCode{"353", "0"}, true
	case "fr":
		return callingCode{"33", "0"}, true
	case "de":
		return callingCode{"49", "0"}, true
	case "at":
		return callingCode{"43", "0"}, true
	case "ch":
		return callingCode{"41", "0"}, true
	case "li":
		return callingCode{"423", ""}, true
	case "nl":
		return callingCode{"31", "0"}, true
	case "be":
		return callingCode{"32", "0"}, true
	case "lu":
		return callingCode{"352", ""}, true
	case "it", "sm", "va":
		return callingCode{"39", ""}, true
	case "es":
		return callingCode{"34", ""}, true
	case "pt":
		return callingCode{"351", ""}, true
	case "dk":
		return callingCode{"45", ""}, true
	case "no":
		return callingCode{"47", ""}, true
	case "se":
		return callingCode{"46", "0"}, true
	case "fi":
		return callingCode{"358", "0"}, true
	case "is":
		return callingCode{"354", ""}, true
	case "pl":
		return callingCode{"48", ""}, true
	case "cz":
		return callingCode{"420", ""}, true
	case "sk":
		return callingCode{"421", "0"}, true
	case "hu":
		return callingCode{"36", "06"}, true
	case "ro":
		return callingCode{"40", "0"}, true
	case "bg":
		return callingCode{"359", "0"}, true
	case "gr":
		return callingCode{"30", ""}, true
	case "hr":
		return callingCode{"385", "0"}, true
	case "si":
		return callingCode{"386", "0"}, true
	case "rs":
		return callingCode{"381", "0"}, true
	case "ee":
		return callingCode{"372", ""}, true
	case "lv":
		return callingCode{"371", ""}, true
	case "mt":
		return callingCode{"356", ""}, true
	case "cy":
		return callingCode{"357", ""}, true
	case "tr":
		return callingCode{"90", "0"}, true
	case "ua":
		return callingCode{"380", "0"}, true
	case "il":
		return callingCode{"972", "0"}, true
	case "ae":
		return callingCode{"971", "0"}, true
	case "sa":
		return callingCode{"966", "0"}, true
	case "eg":
		return callingCode{"20", "0"}, true
	case "za":
		return callingCode{"27", "0"}, true
	case "ng":
		return callingCode{"234", "0"}, true
	case "ke":
		return callingCode{"254", "0"}, true
	case "in":
		return callingCode{"91", "0"}, true
	case "pk":
		return callingCode{"92", "0"}, true
	case "cn":
		return callingCode{"86", "0"}, true
	case "hk":
		return callingCode{"852", ""}, true
	case "tw":
		return callingCode{"886", "0"}, true
	case "jp":
		return callingCode{"81", "0"}, true
	case "kr":
		return callingCode{"82", "0"}, true
	case "sg":
		return callingCode{"65", ""}, true
	case "my":
		return callingCode{"60", "0"}, true
	case "th":
		return callingCode{"66", "0"}, true
	case "vn":
		return callingCode{"84", "0"}, true
	case "id":
		return callingCode{"62", "0"}, true
	case "ph":
		return callingCode{"63", "0"}, true
	case "au":
		return callingCode{"61", "0"}, true
	case "nz":
		return callingCode{"64", "0"}, true
	case "mx":
		return callingCode{"52", ""}, true
	case "br":
		return callingCode{"55", "0"}, true
	case "ar":
		return callingCode{"54", "0"}, true
	case "pe":
		return callingCode{"51", "0"}, true
	}
	return callingCode{}, false
}

// lookupRegionCode maps a US state or Canadian province name (lowercase,
// letters only) to its 2-letter code; 2-letter input is returned as is.
func lookupRegionCode(name string) (string, bool) {
	switch name {
	case "alabama":
		return "al", true
	case "alaska":
		return "ak", true
	case "arizona":
		return "az", true
	case "arkansas":
		return "ar", true
	case "california":
		return "ca", true
	case "colorado":
		return "co", true
	case "connecticut":
		return "ct", true
	case "delaware":
		return "de", true
	case "districtofcolumbia", "washingtondc":
		return "dc", true
	case "florida":
		return "fl", true
	case "georgia":
		return "ga", true
	case "hawaii":
		return "hi", true
	case "idaho":
		return "id", true
	case "illinois":
		return "il", true
	case "indiana":
		return "in", true
	case "iowa":
		return "ia", true
	case "kansas":
		return "ks", true
	case "kentucky":
		return "ky", true
	case "louisiana":
		return "la", true
	case "maine":
		return "me", true
	case "maryland":
		return "md", true
	case "massachusetts":
		return "ma", true
	case "michigan":
		return "mi", true
	case "minnesota":
		return "mn", true
	case "mississippi":
		return "ms", true
	case "missouri":
		return "mo", true
	case "montana":
		return "mt", true
	case "nebraska":
		return "ne", true
	case "nevada":
		return "nv", true
	case "newhampshire":
		return "nh", true
	case "newjersey":
		return "nj", true
	case "newmexico":
		return "nm", true
	case "newyork":
		return "ny", true
	case "northcarolina":
		return "nc", true
	case "northdakota":
		return "nd", true
	case "ohio":
		return "oh", true
	case "oklahoma":
		return "ok", true
	case "oregon":
		return "or", true
	case "pennsylvania":
		return "pa", true
	case "rhodeisland":
		return "ri", true
	case "southcarolina":
		return "sc", true
	case "southdakota":
		return "sd", true
	case "tennessee":
		return "tn", true
	case "texas":
		return "tx", true
	case "utah":
		return "ut", true
	case "vermont":
		return "vt", true
	case "virginia":
		return "va", true
	case "washington":
		return "wa", true
	case "westvirginia":
		return "wv", true
	case "wisconsin":
		return "wi", true
	case "wyoming":
		return "wy", true
	case "puertorico":
		return "pr", true
	case "guam":
		return "gu", true
	case "americansamoa":
		return "as", true
	case "northernmarianaislands":
		return "mp", true
	case "usvirginislands", "virginislands":
		return "vi", true
	// Canada.
	case "alberta":
		return "ab", true
	case "britishcolumbia":
		return "bc", true
	case "manitoba":
		return "mb", true
	case "newbrunswick":
		return "nb", true
	case "newfoundlandandlabrador", "newfoundland":
		return "nl", true
	case "novascotia":
		return "ns", true
	case "ontario":
		return "on", true
	case "princeedwardisland":
		return "pe", true
	case "quebec", "québec":
		return "qc", true
	case "saskatchewan":
		return "sk", true
	case "northwestterritories":
		return "nt", true
	case "nunavut":
		return "nu", true
	case "yukon":
		return "yt", true
	}
	return "", false
}

// lookupCountry maps an alpha-3 code or an English (or native) country name,
// lowercase letters only, to its alpha-2 code.
func lookupCountry(name string) (string, bool) {
	switch name {
	case "usa", "unitedstates", "unitedstatesofamerica", "america":
		return "us", true
	case "can", "canada":
		return "ca", true
	case "gbr", "unitedkingdom", "greatbritain", "britain", "england", "scotland", "wales", "northernireland":
		return "gb", true
	case "irl", "ireland":
		return "ie", true
	case "fra", "france":
		return "fr", true
	case "deu", "germany", "deutschland":
		return "de", true
	case "aut", "austria", "österreich":
		return "at", true
	case "che", "switzerland", "schweiz", "suisse":
		return "ch", true
	case "nld", "netherlands", "thenetherlands", "holland", "nederland":
		return "nl", true
	case "bel", "belgium":
		return "be", true
	case "lux", "luxembourg":
		return "lu", true
	case "ita", "italy", "italia":
		return "it", true
	case "esp", "spain", "españa", "espana":
		return "es", true
	case "prt", "portugal":
		return "pt", true
	case "dnk", "denmark", "danmark":
		return "dk", true
	case "nor", "norway", "norge":
		return "no", true
	case "swe", "sweden", "sverige":
		return "se", true
	case "fin", "finland", "suomi":
		return "fi", true
	case "isl", "iceland":
		return "is", true
	case "pol", "poland", "polska":
		return "pl", true
	case "cze", "czechia", "czechrepublic":
		return "cz", true
	case "svk", "slovakia":
		return "sk", true
	case "hun", "hungary":
		return "hu", true
	case "rou", "romania":
		return "ro", true
	case "bgr", "bulgaria":
		return "bg", true
	case "grc", "greece":
		return "gr", true
	case "hrv", "croatia":
		return "hr", true
	case "svn", "slovenia":
		return "si", true
	case "srb", "serbia":
		return "rs", true
	case "est", "estonia":
		return "ee", true
	case "lva", "latvia":
		return "lv", true
	case "ltu", "lithuania":
		return "lt", true
	case "mlt", "malta":
		return "mt", true
	case "cyp", "cyprus":
		return "cy", true
	case "tur", "turkey", "türkiye", "turkiye":
		return "tr", true
	case "ukr", "ukraine":
		return "ua", true
	case "rus", "russia", "russianfederation":
		return "ru", true
	case "isr", "israel":
		return "il", true
	case "are", "unitedarabemirates", "uae":
		return "ae", true
	case "sau", "saudiarabia":
		return "sa", true
	case "egy", "egypt":
		return "eg", true
	case "zaf", "southafrica":
		return "za", true
	case "nga", "nigeria":
		return "ng", true
	case "ken", "kenya":
		return "ke", true
	case "ind", "india":
		return "in", true
	case "pak", "pakistan":
		return "pk", true
	case "chn", "china":
		return "cn", true
	case "hkg", "hongkong":
		return "hk", true
	case "twn", "taiwan":
		return "tw", true
	case "jpn", "japan":
		return "jp", true
	case "kor", "southkorea", "korea", "republicofkorea":
		return "kr", true
	case "sgp", "singapore":
		return "sg", true
	case "mys", "malaysia":
		return "my", true
	case "tha", "thailand":
		return "th", true
	case "vnm", "vietnam":
		return "vn", true
	case "idn", "indonesia":
		return "id", true
	case "phl", "philippines":
		return "ph", true
	case "aus", "australia":
		return "au", true
	case "nzl", "newzealand":
		return "nz", true
	case "mex", "mexico", "méxico":
		return "mx", true
	case "bra", "brazil", "brasil":
		return "br", true
	case "arg", "argentina":
		return "ar", true
	case "chl", "chile":
		return "cl", true
	case "col", "colombia":
		return "co", true
	case "per", "peru", "perú":
		return "pe", true
	}
	return "", false
}
