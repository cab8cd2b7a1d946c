"""Building one configuration's training set from its plugins: class balancing, synthesizer
text and augmentation, on the train split only."""
