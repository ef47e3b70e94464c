package member

// OnLearner sets the hook Join runs between the learner's start and its
// promotion.
func OnLearner(c *Config, f func(*Member)) { c.onLearner = f }
