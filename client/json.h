/* json.h: just enough JSON output for `strata --json`: escaped strings,
 * numbers that read back exactly, and any strata.v1 message printed from its
 * protobuf-c descriptor with the .proto's field names. Not a parser. */
#ifndef STRATA_CLIENT_JSON_H
#define STRATA_CLIENT_JSON_H

#include <stddef.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

/* Write s[0..len) as a JSON string with its quotes. UTF-8 passes through;
 * '"', '\\', control characters, DEL and U+2028/U+2029 are escaped; bytes that
 * are not valid UTF-8 become \ufffd, so the output is always valid JSON. */
void json_put_string(FILE *f, const char *s, size_t len);

/* A finite double with the fewest digits that read back to the same value;
 * NaN and infinities (not JSON) as null. */
void json_put_double(FILE *f, double v);

/* The fields of msg as `"name":value` pairs separated by commas, without
 * braces (so a caller can add its own keys). Every field is written, defaults
 * included, except unset sub-messages and oneof members that are not
 * selected. Enums are written as their value name in lower case without the
 * enum's prefix ("FINISH_REASON_EOS" -> "eos"); bytes as strings (see
 * json_put_string); 64-bit integers as decimal strings ("18446744073709551615"),
 * as protobuf's canonical JSON mapping writes them, so that readers that hold
 * numbers as doubles (jq, JavaScript) do not round them. */
void json_put_fields(FILE *f, const ProtobufCMessage *msg);

/* `{` json_put_fields `}` */
void json_put_message(FILE *f, const ProtobufCMessage *msg);

/* The short name of an enum value as json_put_fields writes it, upper case:
 * "EOS", "PROMPT_TOO_LONG"; NULL for a value the descriptor does not know.
 * Points into the descriptor (static). */
const char *json_enum_name(const ProtobufCEnumDescriptor *d, int value);

#endif
