/*
 * extract.h: the rules extractor, the deterministic heart of the `rules`
 * processor. It reads one email record (etc/email.schema.json: subject,
 * sender, body, and the dieted "text" when there is one) and fills the
 * extraction of etc/extraction.schema.json: candidate_name, job_title,
 * location {city, state}, company_name, referrer_name, phone, email, website,
 * linkedin_url, industry, and a confidence per field.
 *
 * Grounded: every string it returns occurs in the email (subject, sender
 * name or address, or body; whitespace runs compare equal), checked once
 * more before returning; a field it cannot find is null with confidence 0.
 * Pure and thread-safe: no state, no allocation kept.
 */
#ifndef INTAKE_RULES_EXTRACT_H
#define INTAKE_RULES_EXTRACT_H

#include <json-c/json.h>

#include <intake/plugin.h>

#include "email/email.h"

/* Field names in the schema's order. */
extern const char *const rx_fields[];
#define RX_NFIELDS 10

/* Returns a new extraction object for the email record, NULL when out of
 * memory. Never fails on odd input: missing parts just give nulls. */
json_object *rx_extract(json_object *email);

/*
 * Extracts one record in place, the whole of what the `rules` processor does
 * per record (and what gpt_batch does when it falls back to rules): a payload
 * that is not yet an email record is normalised first (diet as `dopts`), then
 * payload[field] = the extraction and metadata extracted_by = "rules".
 * Returns 0 (with *found = non-null fields), IK_E_NOMEM, or IK_E_PARSE when
 * the payload is not an email (res then holds IK_FAIL and the reason).
 * Thread-safe; the host is only used for the record it is given.
 */
int rx_extract_record(const ik_host *host, ik_record *rec, const em_diet_opts *dopts,
                      const char *field, ik_result *res, int *found);

/* 1 when value occurs in hay, comparing runs of whitespace as one space and
 * ASCII letters case-sensitively. */
int rx_grounded(const char *hay, const char *value);

#endif
