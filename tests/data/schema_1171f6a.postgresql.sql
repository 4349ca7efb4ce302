-- The schema today's main (commit 1171f6a) made with SQLModel.metadata.create_all on postgresql.
-- Each statement ends with ";" and a newline; generated from storage/models.py at that commit.

CREATE TABLE instance (
	id INTEGER NOT NULL, 
	nonce VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE occurrence (
	id SERIAL NOT NULL, 
	reminder_id VARCHAR NOT NULL, 
	due_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	original_date DATE, 
	title VARCHAR NOT NULL, 
	kind VARCHAR NOT NULL, 
	deadline_at TIMESTAMP WITH TIME ZONE, 
	provisional BOOLEAN NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	fired_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_occurrence_due UNIQUE (reminder_id, due_at)
);

CREATE INDEX ix_occurrence_due_at ON occurrence (due_at);

CREATE INDEX ix_occurrence_reminder_id ON occurrence (reminder_id);

CREATE TABLE confirmation (
	id SERIAL NOT NULL, 
	occurrence_id INTEGER NOT NULL, 
	person_id VARCHAR NOT NULL, 
	confirmed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	via VARCHAR NOT NULL, 
	note TEXT, 
	recorded_by VARCHAR, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_confirmation UNIQUE (occurrence_id, person_id), 
	FOREIGN KEY(occurrence_id) REFERENCES occurrence (id)
);

CREATE INDEX ix_confirmation_occurrence_id ON confirmation (occurrence_id);

CREATE INDEX ix_confirmation_person_id ON confirmation (person_id);

CREATE TABLE expectation (
	id SERIAL NOT NULL, 
	occurrence_id INTEGER NOT NULL, 
	person_id VARCHAR NOT NULL, 
	person_name VARCHAR NOT NULL, 
	unit_id VARCHAR, 
	unit_name VARCHAR, 
	leader_ids JSON NOT NULL, 
	next_followup_at TIMESTAMP WITH TIME ZONE, 
	followups INTEGER NOT NULL, 
	next_escalation_at TIMESTAMP WITH TIME ZONE, 
	escalations INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_expectation UNIQUE (occurrence_id, person_id), 
	FOREIGN KEY(occurrence_id) REFERENCES occurrence (id)
);

CREATE INDEX ix_expectation_occurrence_id ON expectation (occurrence_id);

CREATE INDEX ix_expectation_person_id ON expectation (person_id);

CREATE TABLE nudge (
	id SERIAL NOT NULL, 
	occurrence_id INTEGER NOT NULL, 
	person_id VARCHAR NOT NULL, 
	kind VARCHAR NOT NULL, 
	number INTEGER NOT NULL, 
	at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(occurrence_id) REFERENCES occurrence (id)
);

CREATE INDEX ix_nudge_occurrence_id ON nudge (occurrence_id);

CREATE INDEX ix_nudge_person_id ON nudge (person_id);

CREATE TABLE outbox (
	id SERIAL NOT NULL, 
	dedupe_key VARCHAR NOT NULL, 
	occurrence_id INTEGER, 
	stage VARCHAR NOT NULL, 
	channel_id VARCHAR NOT NULL, 
	platform VARCHAR NOT NULL, 
	robot VARCHAR NOT NULL, 
	body JSON NOT NULL, 
	summary VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	lease_owner VARCHAR, 
	lease_until TIMESTAMP WITH TIME ZONE, 
	last_error TEXT, 
	error_kind VARCHAR, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	sent_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_outbox_dedupe UNIQUE (dedupe_key), 
	FOREIGN KEY(occurrence_id) REFERENCES occurrence (id)
);

CREATE INDEX ix_outbox_channel_id ON outbox (channel_id);

CREATE INDEX ix_outbox_due ON outbox (status, next_attempt_at);

CREATE INDEX ix_outbox_occurrence_id ON outbox (occurrence_id);

CREATE INDEX ix_outbox_robot ON outbox (robot);

CREATE TABLE delivery_attempt (
	id SERIAL NOT NULL, 
	outbox_id INTEGER NOT NULL, 
	attempt INTEGER NOT NULL, 
	at TIMESTAMP WITH TIME ZONE NOT NULL, 
	ok BOOLEAN NOT NULL, 
	error_kind VARCHAR, 
	detail TEXT, 
	http_status INTEGER, 
	PRIMARY KEY (id), 
	FOREIGN KEY(outbox_id) REFERENCES outbox (id)
);

CREATE INDEX ix_delivery_attempt_outbox_id ON delivery_attempt (outbox_id);
