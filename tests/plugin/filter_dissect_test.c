/*
 * filter_dissect_test.c - the `dissect` filter driven in-process: the examples
 * of Logstash's dissect documentation and specs (syslog, append with orders,
 * indirect fields, padding, empty fields, multibyte delimiters), an Apache
 * line, nested targets, chained mappings, convert_datatype, failures that
 * leave the event untouched and tagged, and config errors with their exact
 * FILE:LINE:COL text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"
#include "sluice/plugin.h"
#include "test.h"

#define FILTER_PLUGIN sl_plugin_filter_dissect
#define FILTER_KEY "dissect"
#define FILTER_ID "pipeline.filters[0] (dissect)"
#include "filter_harness.h"

#define FAIL SL_FILTER_FAIL
#define FAIL_TAGGED SL_FILTER_FAIL_TAGGED

TEST(test_descriptor)
{
    CHECK_STR(P.name, "dissect");
    CHECK_INT(P.kind, SL_PLUGIN_FILTER);
    CHECK_STR(P.failure_tag, "_dissectfailure");
}

/* Logstash's documentation example and its spec's syslog line. */
TEST(test_syslog)
{
    WITH("dissect:\n"
         "  mapping:\n"
         "    message: \"%{ts} %{+ts} %{+ts} %{src} %{} %{prog}[%{pid}]: %{msg}\"\n") {
        EXPECT(w.k,
               "{\"message\":\"Mar 16 00:01:25 evita skip-this postfix/smtpd[1713]: connect "
               "from camomile.cloud9.net[168.100.1.3]\"}",
               "{\"message\":\"Mar 16 00:01:25 evita skip-this postfix/smtpd[1713]: connect "
               "from camomile.cloud9.net[168.100.1.3]\",\"ts\":\"Mar 16 00:01:25\","
               "\"src\":\"evita\",\"prog\":\"postfix/smtpd\",\"pid\":\"1713\","
               "\"msg\":\"connect from camomile.cloud9.net[168.100.1.3]\"}");
        /* The last field takes the rest, delimiters included. */
        EXPECT(w.k, "{\"message\":\"Jan 1 10:00:00 h x cron[1]: a: b [c] d\"}",
               "{\"message\":\"Jan 1 10:00:00 h x cron[1]: a: b [c] d\",\"ts\":\"Jan 1 "
               "10:00:00\",\"src\":\"h\",\"prog\":\"cron\",\"pid\":\"1\",\"msg\":\"a: b [c] d\"}");
    }
}

/* The README's example. */
TEST(test_readme_example)
{
    WITH("dissect:\n"
         "  mapping:\n"
         "    message: \"%{ts} %{+ts} %{+ts} %{host} %{} %{prog}[%{pid}]: %{msg}\"\n"
         "    msg: \"%{?key}=%{&key} %{rest}\"\n"
         "  convert_datatype:\n"
         "    pid: int\n"
         "  tag_on_failure: [_dissectfailure]\n") {
        EXPECT(w.k,
               "{\"message\":\"Mar 16 00:01:25 evita skip-this postfix/smtpd[1713]: user=alice "
               "logged in\"}",
               "{\"message\":\"Mar 16 00:01:25 evita skip-this postfix/smtpd[1713]: user=alice "
               "logged in\",\"ts\":\"Mar 16 00:01:25\",\"host\":\"evita\","
               "\"prog\":\"postfix/smtpd\",\"pid\":1713,\"msg\":\"user=alice logged in\","
               "\"rest\":\"logged in\",\"user\":\"alice\"}");
    }
    WITH("dissect: {mapping: {message: '%{id->} %{fn}'}}\n") {
        EXPECT(w.k, "{\"message\":\"7     run\"}", "{\"message\":\"7     run\",\"id\":\"7\","
                    "\"fn\":\"run\"}");
    }
    WITH("dissect: {mapping: {message: '%{+a/2} %{+a/1}'}}\n") {
        EXPECT(w.k, "{\"message\":\"x y\"}", "{\"message\":\"x y\",\"a\":\"y x\"}");
    }
    WITH("dissect: {mapping: {message: '%{name}.log'}}\n") {
        EXPECT(w.k, "{\"message\":\"app.log.1\"}", "{\"message\":\"app.log.1\",\"name\":\"app\"}");
    }
}

TEST(test_apache_line)
{
    WITH("dissect:\n"
         "  mapping:\n"
         "    message: '%{clientip} %{ident} %{auth} [%{timestamp}] \"%{verb} %{request} "
         "HTTP/%{httpversion}\" %{status} %{bytes}'\n"
         "  convert_datatype: {status: int, bytes: int}\n") {
        EXPECT(w.k,
               "{\"message\":\"192.168.1.10 - frank [10/Oct/2000:13:55:36 -0700] \\\"GET "
               "/apache_pb.gif HTTP/1.0\\\" 200 2326\"}",
               "{\"message\":\"192.168.1.10 - frank [10/Oct/2000:13:55:36 -0700] \\\"GET "
               "/apache_pb.gif HTTP/1.0\\\" 200 2326\",\"clientip\":\"192.168.1.10\","
               "\"ident\":\"-\",\"auth\":\"frank\",\"timestamp\":\"10/Oct/2000:13:55:36 -0700\","
               "\"verb\":\"GET\",\"request\":\"/apache_pb.gif\",\"httpversion\":\"1.0\","
               "\"status\":200,\"bytes\":2326}");
        /* "-" for bytes: dissected, then not a number: its own tag, not _dissectfailure. */
        EXPECT_RC(w.k,
                  "{\"message\":\"::1 - - [10/Oct/2000:13:55:36 -0700] \\\"HEAD / HTTP/1.1\\\" "
                  "304 -\"}",
                  "{\"message\":\"::1 - - [10/Oct/2000:13:55:36 -0700] \\\"HEAD / HTTP/1.1\\\" "
                  "304 -\",\"clientip\":\"::1\",\"ident\":\"-\",\"auth\":\"-\","
                  "\"timestamp\":\"10/Oct/2000:13:55:36 -0700\",\"verb\":\"HEAD\","
                  "\"request\":\"/\",\"httpversion\":\"1.1\",\"status\":304,\"bytes\":\"-\","
                  "\"tags\":[\"_dataconversionuncoercible_bytes_int\"]}",
                  FAIL_TAGGED);
    }
}

TEST(test_append)
{
    /* The documentation's examples. */
    WITH("dissect: {mapping: {message: '%{+a/2} %{+a/1} %{+a/4} %{+a/3}'}}\n") {
        EXPECT(w.k, "{\"message\":\"1 2 3 go\"}", "{\"message\":\"1 2 3 go\",\"a\":\"2 1 go 3\"}");
    }
    WITH("dissect: {mapping: {message: '%{a} %{b} %{+a}'}}\n") {
        EXPECT(w.k, "{\"message\":\"1 2 3 go\"}",
               "{\"message\":\"1 2 3 go\",\"a\":\"1 3 go\",\"b\":\"2\"}");
    }
    /* The spec's: orders, and the delimiter before each field as the joint. */
    WITH("dissect: {mapping: {message: '%{+key/3} %{+key/1} %{+key/2}'}}\n") {
        EXPECT(w.k, "{\"message\":\"1 2 3\"}", "{\"message\":\"1 2 3\",\"key\":\"2 3 1\"}");
    }
    WITH("dissect: {mapping: {message: '%{key}-%{+key}-%{+key}'}}\n") {
        EXPECT(w.k, "{\"message\":\"1-2-3\"}", "{\"message\":\"1-2-3\",\"key\":\"1-2-3\"}");
    }
    /* Without an order, pattern order; an order-less field comes before /1. Two targets. */
    WITH("dissect: {mapping: {message: '%{+d/1}.%{+t}:%{+d}.%{+t/1}'}}\n") {
        EXPECT(w.k, "{\"message\":\"a.b:c.d\"}", "{\"message\":\"a.b:c.d\",\"d\":\"c a\","
                    "\"t\":\"b.d\"}");
    }
    /* Onto a field the event held before (Logstash's note), whatever its scalar type. */
    WITH("dissect: {mapping: {message: '%{+a} %{+a}'}}\n") {
        EXPECT(w.k, "{\"a\":\"x\",\"message\":\"1 2\"}", "{\"a\":\"x 1 2\",\"message\":\"1 2\"}");
        EXPECT(w.k, "{\"a\":7,\"message\":\"1 2\"}", "{\"a\":\"7 1 2\",\"message\":\"1 2\"}");
        EXPECT(w.k, "{\"a\":2.5,\"message\":\"1 2\"}", "{\"a\":\"2.5 1 2\",\"message\":\"1 2\"}");
        EXPECT(w.k, "{\"a\":true,\"message\":\"1 2\"}",
               "{\"a\":\"true 1 2\",\"message\":\"1 2\"}");
        /* Not a scalar: replaced. */
        EXPECT(w.k, "{\"a\":{\"b\":1},\"message\":\"1 2\"}", "{\"a\":\"1 2\",\"message\":\"1 2\"}");
    }
    /* The joint before the first field is the leading text, else a space. */
    WITH("dissect: {mapping: {message: '<%{+a}> <%{+a}>'}}\n") {
        EXPECT(w.k, "{\"message\":\"<x> <y>\",\"a\":\"w\"}",
               "{\"message\":\"<x> <y>\",\"a\":\"w<x> <y\"}");
    }
}

TEST(test_indirect)
{
    /* The documentation's examples. */
    WITH("dissect: {mapping: {message: 'error: %{?err}, %{&err}'}}\n") {
        EXPECT(w.k, "{\"message\":\"error: some_error, some_description\"}",
               "{\"message\":\"error: some_error, some_description\","
               "\"some_error\":\"some_description\"}");
    }
    WITH("dissect: {mapping: {message: '%{?a}: %{&a}'}}\n") {
        EXPECT(w.k, "{\"message\":\"google: 77.98\"}",
               "{\"message\":\"google: 77.98\",\"google\":\"77.98\"}");
    }
    /* The spec's: the key from a normal field, which is kept. */
    WITH("dissect: {mapping: {message: '%{key} %{&key}'}}\n") {
        EXPECT(w.k, "{\"message\":\"hello world\"}",
               "{\"message\":\"hello world\",\"key\":\"hello\",\"hello\":\"world\"}");
    }
    /* Elasticsearch's spelling of the key half: %{*key}. */
    WITH("dissect: {mapping: {message: '%{*p1}=%{&p1} %{*p2}=%{&p2}'}}\n") {
        EXPECT(w.k, "{\"message\":\"user=alice role=admin\"}",
               "{\"message\":\"user=alice role=admin\",\"user\":\"alice\",\"role\":\"admin\"}");
    }
    /* The key from a field the event held before; it wins over the pattern's. */
    WITH("dissect: {mapping: {message: '%{?k}=%{&k}'}}\n") {
        EXPECT(w.k, "{\"k\":\"color\",\"message\":\"size=red\"}",
               "{\"k\":\"color\",\"message\":\"size=red\",\"color\":\"red\"}");
        /* A key from the line is one literal top-level name, never a reference. */
        EXPECT(w.k, "{\"message\":\"[a][b]=1\"}", "{\"message\":\"[a][b]=1\",\"[a][b]\":\"1\"}");
        EXPECT(w.k, "{\"message\":\"a.b=1\"}", "{\"message\":\"a.b=1\",\"a.b\":\"1\"}");
        /* An empty key writes nothing (and is no failure). */
        EXPECT(w.k, "{\"message\":\"=1\"}", "{\"message\":\"=1\"}");
    }
    /* No field of the pattern names the key, and the event has none: nothing. */
    WITH("dissect: {mapping: {message: '%{a} %{&nokey}'}}\n") {
        EXPECT(w.k, "{\"message\":\"x y\"}", "{\"message\":\"x y\",\"a\":\"x\"}");
        EXPECT(w.k, "{\"nokey\":5,\"message\":\"x y\"}",
               "{\"nokey\":5,\"message\":\"x y\",\"a\":\"x\",\"5\":\"y\"}");
    }
}

/* Logstash's spec: indirect key plus conversions, with ASCII and multibyte delimiters. */
TEST(test_indirect_and_convert)
{
    WITH("dissect:\n"
         "  mapping:\n"
         "    message: '[%{occurred_at}] %{code} %{service} %{?ic}=%{&ic}% %{svc_message}'\n"
         "  convert_datatype: {cpu: float, code: int}\n") {
        EXPECT(w.k,
               "{\"message\":\"[25/05/16 09:10:38:425 BST] 00000001 SystemOut cpu=95.43% "
               "java.lang:type=MemoryPool,name=class storage\"}",
               "{\"message\":\"[25/05/16 09:10:38:425 BST] 00000001 SystemOut cpu=95.43% "
               "java.lang:type=MemoryPool,name=class storage\",\"occurred_at\":\"25/05/16 "
               "09:10:38:425 BST\",\"code\":1,\"service\":\"SystemOut\","
               "\"svc_message\":\"java.lang:type=MemoryPool,name=class storage\","
               "\"cpu\":95.43}");
    }
    WITH("dissect:\n"
         "  mapping:\n"
         "    message: '[%{occurred_at}]྿྿྿%{code}྿%{service}྿྿྿྿%{?ic}=%{&ic}%྿྿%{svc_message}'\n"
         "  convert_datatype: {cpu: float, code: int}\n") {
        EXPECT(w.k,
               "{\"message\":\"[25/05/16 09:10:38:425 BST]྿྿྿00000001྿SystemOut྿྿྿྿cpu=95.43%྿྿"
               "java.lang:type=MemoryPool,name=class storage\"}",
               "{\"message\":\"[25/05/16 09:10:38:425 BST]྿྿྿00000001྿SystemOut྿྿྿྿cpu=95.43%྿྿"
               "java.lang:type=MemoryPool,name=class storage\",\"occurred_at\":\"25/05/16 "
               "09:10:38:425 BST\",\"code\":1,\"service\":\"SystemOut\","
               "\"svc_message\":\"java.lang:type=MemoryPool,name=class storage\","
               "\"cpu\":95.43}");
    }
}

TEST(test_padding)
{
    /* The documentation's right padding... */
    WITH("dissect: {mapping: {message: '%{id} %{function->} %{server}'}}\n") {
        EXPECT(w.k, "{\"message\":\"00000043 ViewReceive     machine-321\"}",
               "{\"message\":\"00000043 ViewReceive     machine-321\",\"id\":\"00000043\","
               "\"function\":\"ViewReceive\",\"server\":\"machine-321\"}");
        EXPECT(w.k, "{\"message\":\"f3000a3b Calc            machine-123\"}",
               "{\"message\":\"f3000a3b Calc            machine-123\",\"id\":\"f3000a3b\","
               "\"function\":\"Calc\",\"server\":\"machine-123\"}");
        /* No padding at all is fine too. */
        EXPECT(w.k, "{\"message\":\"1 Calc m\"}",
               "{\"message\":\"1 Calc m\",\"id\":\"1\",\"function\":\"Calc\",\"server\":\"m\"}");
    }
    /* ...and left padding (to the eye): the suffix goes on the field before it. */
    WITH("dissect: {mapping: {message: '%{id->} %{function} %{server}'}}\n") {
        EXPECT(w.k, "{\"message\":\"00000043     ViewReceive machine-321\"}",
               "{\"message\":\"00000043     ViewReceive machine-321\",\"id\":\"00000043\","
               "\"function\":\"ViewReceive\",\"server\":\"machine-321\"}");
    }
    /* Without the suffix, repeated delimiters are empty fields. */
    WITH("dissect: {mapping: {message: '%{id} %{function} %{server}'}}\n") {
        EXPECT(w.k, "{\"message\":\"1  Calc m\"}",
               "{\"message\":\"1  Calc m\",\"id\":\"1\",\"function\":\"\",\"server\":\"Calc m\"}");
    }
    /* A delimiter of several characters repeats whole; %{->} is a padded skip. */
    WITH("dissect: {mapping: {message: '%{a->}--%{b}|%{->}|%{c}'}}\n") {
        EXPECT(w.k, "{\"message\":\"x------y|skip|||z\"}",
               "{\"message\":\"x------y|skip|||z\",\"a\":\"x\",\"b\":\"y\",\"c\":\"z\"}");
        EXPECT(w.k, "{\"message\":\"x---y|s|z\"}",
               "{\"message\":\"x---y|s|z\",\"a\":\"x\",\"b\":\"-y\",\"c\":\"z\"}");
    }
}

TEST(test_skip_fields)
{
    WITH("dissect: {mapping: {message: '%{} %{key}'}}\n") {
        EXPECT(w.k, "{\"message\":\"hello world\"}",
               "{\"message\":\"hello world\",\"key\":\"world\"}");
    }
    WITH("dissect: {mapping: {message: '%{?first} %{} %{last}'}}\n") {
        EXPECT(w.k, "{\"message\":\"a b c d\"}", "{\"message\":\"a b c d\",\"last\":\"c d\"}");
    }
}

TEST(test_empty_fields)
{
    WITH("dissect: {mapping: {message: '%{name},%{addr1},%{addr2},%{addr3},%{city},%{zip}'}}\n") {
        EXPECT(w.k, "{\"message\":\"Jane Doe,4321 Fifth Avenue,,,New York,87432\"}",
               "{\"message\":\"Jane Doe,4321 Fifth Avenue,,,New York,87432\",\"name\":\"Jane "
               "Doe\",\"addr1\":\"4321 Fifth Avenue\",\"addr2\":\"\",\"addr3\":\"\","
               "\"city\":\"New York\",\"zip\":\"87432\"}");
        EXPECT(w.k, "{\"message\":\",,,,,\"}",
               "{\"message\":\",,,,,\",\"name\":\"\",\"addr1\":\"\",\"addr2\":\"\","
               "\"addr3\":\"\",\"city\":\"\",\"zip\":\"\"}");
    }
    /* A line that starts with the delimiter: the first field is empty. */
    WITH("dissect: {mapping: {message: '%{a} %{b}'}}\n") {
        EXPECT(w.k, "{\"message\":\" x\"}", "{\"message\":\" x\",\"a\":\"\",\"b\":\"x\"}");
    }
}

TEST(test_leading_and_trailing_delimiters)
{
    WITH("dissect: {mapping: {message: '/var/%{key}/log/%{key1}.log'}}\n") {
        EXPECT(w.k, "{\"message\":\"/var/foobar/log/apache.log\"}",
               "{\"message\":\"/var/foobar/log/apache.log\",\"key\":\"foobar\","
               "\"key1\":\"apache\"}");
        /* After the trailing delimiter, the rest is ignored, as in Logstash. */
        EXPECT(w.k, "{\"message\":\"/var/a/log/b.log.1\"}",
               "{\"message\":\"/var/a/log/b.log.1\",\"key\":\"a\",\"key1\":\"b\"}");
        /* The leading text must start the line. */
        EXPECT_RC(w.k, "{\"message\":\"x/var/a/log/b.log\"}",
                  "{\"message\":\"x/var/a/log/b.log\",\"tags\":[\"_dissectfailure\"]}", FAIL);
        /* The trailing delimiter must be there. */
        EXPECT_RC(w.k, "{\"message\":\"/var/a/log/b\"}",
                  "{\"message\":\"/var/a/log/b\",\"tags\":[\"_dissectfailure\"]}", FAIL);
    }
    WITH("dissect: {mapping: {message: '/var/%{key}'}}\n") {
        EXPECT(w.k, "{\"message\":\"/var/foobar/log\"}",
               "{\"message\":\"/var/foobar/log\",\"key\":\"foobar/log\"}");
    }
    WITH("dissect: {mapping: {message: '%{key}'}}\n") {
        EXPECT(w.k, "{\"message\":\"foobar\"}", "{\"message\":\"foobar\",\"key\":\"foobar\"}");
    }
    /* Braces and a lone % are plain text in a delimiter; only %{ opens a field. */
    WITH("dissect: {mapping: {message: '{%{a}} 100% {%{b}}'}}\n") {
        EXPECT(w.k, "{\"message\":\"{x} 100% {y}\"}",
               "{\"message\":\"{x} 100% {y}\",\"a\":\"x\",\"b\":\"y\"}");
    }
}

TEST(test_nested_targets)
{
    WITH("dissect:\n"
         "  mapping:\n"
         "    '[log][original]': '%{[host][name]} %{[http][status]} %{url.path} %{+[u][q]} "
         "%{+[u][q]}'\n"
         "  convert_datatype: {'[http][status]': int}\n") {
        EXPECT(w.k, "{\"log\":{\"original\":\"web-1 404 /index.html a b\"},\"host\":{\"ip\":1}}",
               "{\"log\":{\"original\":\"web-1 404 /index.html a b\"},\"host\":{\"ip\":1,"
               "\"name\":\"web-1\"},\"http\":{\"status\":404},\"url\":{\"path\":\"/index.html\"},"
               "\"u\":{\"q\":\"a b\"}}");
        /* No source field: nothing to do, as in Logstash; conversions still run. */
        EXPECT_RC(w.k, "{\"message\":\"web-1 404 /x\"}",
                  "{\"message\":\"web-1 404 /x\",\"tags\":"
                  "[\"_dataconversionnullvalue_[http][status]_int\"]}",
                  FAIL_TAGGED);
    }
}

/* A pattern may overwrite the field it reads; the values still come from the line. */
TEST(test_overwrite_source)
{
    WITH("dissect: {mapping: {message: '%{level}: %{message}'}}\n") {
        EXPECT(w.k, "{\"message\":\"WARN: disk 91% full\",\"x\":1}",
               "{\"message\":\"disk 91% full\",\"x\":1,\"level\":\"WARN\"}");
    }
    WITH("dissect: {mapping: {a.b: '%{a} %{c}'}}\n") {
        EXPECT(w.k, "{\"a\":{\"b\":\"1 2\"}}", "{\"a\":\"1\",\"c\":\"2\"}");
    }
    /* Appending to the source joins onto the whole source text, as Logstash does. */
    WITH("dissect: {mapping: {message: '%{a} %{+message}'}}\n") {
        EXPECT(w.k, "{\"message\":\"1 2\"}", "{\"message\":\"1 2 2\",\"a\":\"1\"}");
    }
    /* An indirect key read from the source itself. */
    WITH("dissect: {mapping: {k: '%{&k}'}}\n") {
        EXPECT(w.k, "{\"k\":\"k\"}", "{\"k\":\"k\"}");
        EXPECT(w.k, "{\"k\":\"v\"}", "{\"k\":\"v\",\"v\":\"v\"}");
    }
}

TEST(test_chained_mappings)
{
    WITH("dissect:\n"
         "  mapping:\n"
         "    message: '%{field1} %{field2} %{description}'\n"
         "    description: '%{field3} %{field4} %{field5}'\n") {
        EXPECT(w.k, "{\"message\":\"a b c d e\"}",
               "{\"message\":\"a b c d e\",\"field1\":\"a\",\"field2\":\"b\","
               "\"description\":\"c d e\",\"field3\":\"c\",\"field4\":\"d\",\"field5\":\"e\"}");
        /* The second fails: it writes nothing; the first's fields stay (as in Logstash). */
        EXPECT_RC(w.k, "{\"message\":\"a b c\"}",
                  "{\"message\":\"a b c\",\"field1\":\"a\",\"field2\":\"b\","
                  "\"description\":\"c\",\"tags\":[\"_dissectfailure\"]}",
                  FAIL);
        /* The first's source is missing: the second still runs on what the event has. */
        EXPECT(w.k, "{\"description\":\"x y z\"}",
               "{\"description\":\"x y z\",\"field3\":\"x\",\"field4\":\"y\",\"field5\":\"z\"}");
    }
}

TEST(test_failures_leave_event_untouched)
{
    WITH("dissect:\n"
         "  mapping: {message: '%{a} %{b}|%{c}'}\n"
         "  convert_datatype: {a: int}\n") {
        /* The first delimiter is there, the second is not: nothing is written. */
        EXPECT_RC(w.k, "{\"message\":\"1 2\",\"a\":\"7\"}",
                  "{\"message\":\"1 2\",\"a\":\"7\",\"tags\":[\"_dissectfailure\"]}", FAIL);
        EXPECT_RC(w.k, "{\"message\":\"no delimiters\"}",
                  "{\"message\":\"no delimiters\",\"tags\":[\"_dissectfailure\"]}", FAIL);
        /* Logstash fails on an empty text; a null or non-text source is a failure too. */
        EXPECT_RC(w.k, "{\"message\":\"\"}", "{\"message\":\"\",\"tags\":[\"_dissectfailure\"]}",
                  FAIL);
        EXPECT_RC(w.k, "{\"message\":null}",
                  "{\"message\":null,\"tags\":[\"_dissectfailure\"]}", FAIL);
        EXPECT_RC(w.k, "{\"message\":12}", "{\"message\":12,\"tags\":[\"_dissectfailure\"]}",
                  FAIL);
        EXPECT_RC(w.k, "{\"message\":[\"1 2|3\"]}",
                  "{\"message\":[\"1 2|3\"],\"tags\":[\"_dissectfailure\"]}", FAIL);
        /* The tag joins existing tags once. */
        EXPECT_RC(w.k, "{\"message\":\"x\",\"tags\":[\"web\",\"_dissectfailure\"]}",
                  "{\"message\":\"x\",\"tags\":[\"web\",\"_dissectfailure\"]}", FAIL);
        EXPECT(w.k, "{\"message\":\"1 2|3\"}",
               "{\"message\":\"1 2|3\",\"a\":1,\"b\":\"2\",\"c\":\"3\"}");
    }
    WITH("dissect:\n"
         "  mapping: {message: '%{a} - %{b}'}\n"
         "  tag_on_failure: [bad_line, also]\n") {
        EXPECT_RC(w.k, "{\"message\":\"a-b\"}",
                  "{\"message\":\"a-b\",\"tags\":[\"bad_line\",\"also\"]}", FAIL);
    }
    WITH("dissect:\n"
         "  mapping: {message: '%{a} - %{b}'}\n"
         "  tag_on_failure: []\n") {
        EXPECT_RC(w.k, "{\"message\":\"a-b\"}", "{\"message\":\"a-b\"}", FAIL);
    }
}

TEST(test_utf8)
{
    WITH("dissect: {mapping: {message: '%{user}→%{city} «%{quote}»'}}\n") {
        EXPECT(w.k, "{\"message\":\"Zoë→Zürich «naïve café»\"}",
               "{\"message\":\"Zoë→Zürich «naïve café»\",\"user\":\"Zoë\",\"city\":\"Zürich\","
               "\"quote\":\"naïve café\"}");
        EXPECT_RC(w.k, "{\"message\":\"Zoë->Zürich\"}",
                  "{\"message\":\"Zoë->Zürich\",\"tags\":[\"_dissectfailure\"]}", FAIL);
    }
    /* Keys and values in other scripts, and a delimiter of one multibyte character. */
    WITH("dissect: {mapping: {message: '%{?k}：%{&k}'}}\n") {
        EXPECT(w.k, "{\"message\":\"名前：太郎\"}", "{\"message\":\"名前：太郎\",\"名前\":\"太郎\"}");
    }
}

TEST(test_convert_datatype)
{
    WITH("dissect:\n"
         "  convert_datatype: {i: int, f: float}\n") {
        EXPECT(w.k, "{\"i\":\"00000001\",\"f\":\"95.43\"}", "{\"i\":1,\"f\":95.43}");
        /* BigDecimal's grammar; int truncates toward zero. */
        EXPECT(w.k, "{\"i\":\"12.7\",\"f\":\"1e3\"}", "{\"i\":12,\"f\":1000.0}");
        EXPECT(w.k, "{\"i\":\"-3.9\",\"f\":\"-.5\"}", "{\"i\":-3,\"f\":-0.5}");
        EXPECT(w.k, "{\"i\":\"+1E2\",\"f\":\"7\"}", "{\"i\":100,\"f\":7.0}");
        EXPECT(w.k, "{\"i\":\"-9223372036854775808\",\"f\":\"5.\"}",
               "{\"i\":-9223372036854775808,\"f\":5.0}");
        /* Numbers already: converted between int and float. */
        EXPECT(w.k, "{\"i\":2.9,\"f\":3}", "{\"i\":2,\"f\":3.0}");
        EXPECT(w.k, "{\"i\":4,\"f\":0.25}", "{\"i\":4,\"f\":0.25}");
        /* Not numbers: left as they are, tagged per field. */
        EXPECT_RC(w.k, "{\"i\":\"0x10\",\"f\":\" 1\"}",
                  "{\"i\":\"0x10\",\"f\":\" 1\",\"tags\":[\"_dataconversionuncoercible_i_int\","
                  "\"_dataconversionuncoercible_f_float\"]}",
                  FAIL_TAGGED);
        EXPECT_RC(w.k, "{\"i\":\"9223372036854775808\",\"f\":\"1e999\"}",
                  "{\"i\":\"9223372036854775808\",\"f\":\"1e999\",\"tags\":["
                  "\"_dataconversionuncoercible_i_int\",\"_dataconversionuncoercible_f_float\"]}",
                  FAIL_TAGGED);
        EXPECT_RC(w.k, "{\"i\":\"nan\",\"f\":\"inf\"}",
                  "{\"i\":\"nan\",\"f\":\"inf\",\"tags\":[\"_dataconversionuncoercible_i_int\","
                  "\"_dataconversionuncoercible_f_float\"]}",
                  FAIL_TAGGED);
        EXPECT_RC(w.k, "{\"i\":\"1e\",\"f\":\".\"}",
                  "{\"i\":\"1e\",\"f\":\".\",\"tags\":[\"_dataconversionuncoercible_i_int\","
                  "\"_dataconversionuncoercible_f_float\"]}",
                  FAIL_TAGGED);
        EXPECT_RC(w.k, "{\"i\":true,\"f\":{}}",
                  "{\"i\":true,\"f\":{},\"tags\":[\"_dataconversionuncoercible_i_int\","
                  "\"_dataconversionuncoercible_f_float\"]}",
                  FAIL_TAGGED);
        /* Absent or null. */
        EXPECT_RC(w.k, "{\"f\":null}",
                  "{\"f\":null,\"tags\":[\"_dataconversionnullvalue_i_int\","
                  "\"_dataconversionnullvalue_f_float\"]}",
                  FAIL_TAGGED);
        /* tag_on_failure is for a line that does not match, not for conversions. */
    }
}

TEST(test_when_is_accepted)
{
    struct sl_cfg cfg;
    void *k = load(&cfg, "dissect:\n  mapping: {message: '%{a} %{b}'}\n"
                         "  when: {field: x, equals: y}\n");
    CHECK(k != NULL);
    CHECK_STR(errs(&cfg), "");
    EXPECT(k, "{\"message\":\"1 2\"}", "{\"message\":\"1 2\"}");
    EXPECT(k, "{\"x\":\"y\",\"message\":\"1 2\"}",
           "{\"x\":\"y\",\"message\":\"1 2\",\"a\":\"1\",\"b\":\"2\"}");
    unload(k);
    sl_cfg_free(&cfg);
}

/* The widest pattern allowed, and one past it. */
TEST(test_field_limit)
{
    char yaml[4096], msg[1024], out[4096];
    size_t y = (size_t)snprintf(yaml, sizeof(yaml), "dissect: {mapping: {message: '");
    size_t m = 0;
    for (int i = 0; i < 128; i++) {
        y += (size_t)snprintf(yaml + y, sizeof(yaml) - y, "%s%%{f%d}", i ? " " : "", i);
        m += (size_t)snprintf(msg + m, sizeof(msg) - m, "%s%d", i ? " " : "", i);
    }
    snprintf(yaml + y, sizeof(yaml) - y, "'}}\n");
    size_t o = (size_t)snprintf(out, sizeof(out), "{\"message\":\"%s\"", msg);
    for (int i = 0; i < 128; i++) {
        o += (size_t)snprintf(out + o, sizeof(out) - o, ",\"f%d\":\"%d\"", i, i);
    }
    snprintf(out + o, sizeof(out) - o, "}");
    char in[1100];
    snprintf(in, sizeof(in), "{\"message\":\"%s\"}", msg);
    WITH(yaml) {
        EXPECT(w.k, in, out);
    }

    snprintf(yaml + y, sizeof(yaml) - y, " %%{f128}'}}\n");
    struct sl_cfg cfg;
    CHECK(load(&cfg, yaml) == NULL);
    CHECK_STR(errs(&cfg), "t.yml:1:30: pipeline.filters[0] (dissect): option 'mapping': the "
                          "pattern for 'message': more than 128 fields\n");
    sl_cfg_free(&cfg);
}

TEST(test_config_errors)
{
    struct sl_cfg cfg;
    CHECK(load(&cfg, "dissect:\n"
                     "  mapping:\n"
                     "    message: '%{a}%{b}'\n"
                     "    '[x': '%{a} %{b}'\n"
                     "    m2: '%{+&ts} x'\n"
                     "    m3: '%{a} %{b'\n"
                     "    m4: ''\n"
                     "    m5: 'no fields'\n"
                     "    m6: '%{+} %{&->}'\n"
                     "    m7: '%{a/2} %{b}'\n"
                     "    m8: '%{a..b} x'\n"
                     "    m9: '%{a %{b} x'\n"
                     "    m10: '%{&+x} %{?y/1}'\n"
                     "  convert_datatype:\n"
                     "    code: integer\n"
                     "    'a..b': float\n") == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:3:14: pipeline.filters[0] (dissect): option 'mapping': the pattern for "
              "'message': '%{a}' needs a delimiter before the next field\n"
              "t.yml:4:11: pipeline.filters[0] (dissect): option 'mapping': '[x' is not a valid "
              "field reference\n"
              "t.yml:5:9: pipeline.filters[0] (dissect): option 'mapping': the pattern for 'm2': "
              "'%{+&ts}': a field cannot be both append (+) and indirect (&)\n"
              "t.yml:6:9: pipeline.filters[0] (dissect): option 'mapping': the pattern for 'm3': "
              "'%{b' has no closing '}'\n"
              "t.yml:7:9: pipeline.filters[0] (dissect): option 'mapping': the pattern for 'm4': "
              "empty\n"
              "t.yml:8:9: pipeline.filters[0] (dissect): option 'mapping': the pattern for 'm5': "
              "no %{} field\n"
              "t.yml:9:9: pipeline.filters[0] (dissect): option 'mapping': the pattern for 'm6': "
              "'%{+}': '+' needs a field name after it\n"
              "t.yml:10:9: pipeline.filters[0] (dissect): option 'mapping': the pattern for "
              "'m7': '%{a/2}': an order (/2) applies to append fields only\n"
              "t.yml:11:9: pipeline.filters[0] (dissect): option 'mapping': the pattern for "
              "'m8': '%{a..b}': 'a..b' is not a valid field reference\n"
              "t.yml:12:9: pipeline.filters[0] (dissect): option 'mapping': the pattern for "
              "'m9': '%{a %{b}' opens a field inside a field\n"
              "t.yml:13:10: pipeline.filters[0] (dissect): option 'mapping': the pattern for "
              "'m10': '%{&+x}': a field cannot be both append (+) and indirect (&)\n"
              "t.yml:15:11: pipeline.filters[0] (dissect): option 'convert_datatype': type of "
              "'code' must be int or float, got 'integer'\n"
              "t.yml:16:13: pipeline.filters[0] (dissect): option 'convert_datatype': 'a..b' is "
              "not a valid field reference\n");
    sl_cfg_free(&cfg);

    /* One error per pattern, the first; the others still checked. */
    CHECK(load(&cfg, "dissect:\n"
                     "  mapping:\n"
                     "    a: '%{&->} %{x/3}'\n"
                     "    b: '%{?y/1} %{x}'\n") == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:3:8: pipeline.filters[0] (dissect): option 'mapping': the pattern for 'a': "
              "'%{&->}': '&' needs a field name after it\n"
              "t.yml:4:8: pipeline.filters[0] (dissect): option 'mapping': the pattern for 'b': "
              "'%{?y/1}': an order (/1) applies to append fields only\n");
    sl_cfg_free(&cfg);

    CHECK(load(&cfg, "dissect: {}\n") == NULL);
    CHECK_STR(errs(&cfg), "t.yml:1:10: pipeline.filters[0] (dissect): give 'mapping', "
                          "'convert_datatype' or both: without them the filter does nothing\n");
    sl_cfg_free(&cfg);

    CHECK(load(&cfg, "dissect:\n"
                     "  mapping: '%{a}'\n"
                     "  convert_datatype: [a, int]\n"
                     "  mappings: {}\n") == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:12: pipeline.filters[0] (dissect): option 'mapping' must be a map\n"
              "t.yml:3:21: pipeline.filters[0] (dissect): option 'convert_datatype' must be a "
              "map\n"
              "t.yml:4:3: pipeline.filters[0] (dissect): unknown option 'mappings' (did you mean "
              "'mapping'?)\n");
    sl_cfg_free(&cfg);

    CHECK(load(&cfg, "dissect:\n  mapping: {message: {a: b}}\n") == NULL);
    CHECK_STR(errs(&cfg), "t.yml:2:22: pipeline.filters[0] (dissect): option 'mapping': the "
                          "value of 'message' must be a scalar\n");
    sl_cfg_free(&cfg);
}

TEST(test_free_null)
{
    unload(NULL);
}

int main(void)
{
    RUN(test_descriptor);
    RUN(test_syslog);
    RUN(test_readme_example);
    RUN(test_apache_line);
    RUN(test_append);
    RUN(test_indirect);
    RUN(test_indirect_and_convert);
    RUN(test_padding);
    RUN(test_skip_fields);
    RUN(test_empty_fields);
    RUN(test_leading_and_trailing_delimiters);
    RUN(test_nested_targets);
    RUN(test_overwrite_source);
    RUN(test_chained_mappings);
    RUN(test_failures_leave_event_untouched);
    RUN(test_utf8);
    RUN(test_convert_datatype);
    RUN(test_when_is_accepted);
    RUN(test_field_limit);
    RUN(test_config_errors);
    RUN(test_free_null);
    return TEST_SUMMARY();
}
