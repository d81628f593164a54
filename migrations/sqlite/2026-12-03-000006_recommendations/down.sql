DROP TABLE recommender_models;
DROP TABLE interactions;
