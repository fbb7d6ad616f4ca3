-- An index written by MyYoutube 0.1.0 (schema before PRAGMA user_version was used):
-- one video with its poster, replicated on three datanodes. Loaded by tests/test_index.py.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE blobs (
    blob_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
INSERT INTO blobs VALUES('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',1000,'1111111111111111111111111111111111111111111111111111111111111111');
INSERT INTO blobs VALUES('bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',50,'2222222222222222222222222222222222222222222222222222222222222222');
CREATE TABLE replicas (
    blob_id TEXT NOT NULL REFERENCES blobs(blob_id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    added_at REAL NOT NULL,
    PRIMARY KEY (blob_id, node)
);
INSERT INTO replicas VALUES('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','127.0.0.1:7101',1700000000.0);
INSERT INTO replicas VALUES('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','127.0.0.1:7102',1700000000.0);
INSERT INTO replicas VALUES('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','127.0.0.1:7103',1700000000.0);
INSERT INTO replicas VALUES('bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb','127.0.0.1:7101',1700000000.0);
INSERT INTO replicas VALUES('bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb','127.0.0.1:7102',1700000000.0);
CREATE TABLE videos (
    name TEXT PRIMARY KEY,
    blob_id TEXT NOT NULL REFERENCES blobs(blob_id),
    content_type TEXT NOT NULL,
    uploaded_at REAL NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}',
    poster_blob_id TEXT REFERENCES blobs(blob_id)
);
INSERT INTO videos VALUES('holiday.mp4','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','video/mp4',1700000000.0,'{"duration_s": 6.0, "width": 640, "height": 360, "codec": "h264"}','bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb');
COMMIT;
