-- The notifier's record of the booking emails it has handed to the SMTP server: one row per
-- booking, so a redelivered event sends no second mail.
--
-- The row is written only AFTER the SMTP server accepted the message (writing it first would
-- lose the mail when the notifier dies between the insert and the send). The check, the send
-- and the insert run in one transaction under a per-booking advisory lock, so two notifier
-- instances handed the same event at once send it once. The one duplicate window left: the
-- notifier dies (or its database connection drops) after the SMTP server accepted the mail and
-- before this row commits; the event is then redelivered and the mail goes out again (with the
-- same Message-ID, so mail clients may fold the two).
CREATE TABLE email_deliveries (
    booking_id  uuid PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('confirmed', 'rejected')),
    recipient   text NOT NULL,
    message_id  text NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now()
);
